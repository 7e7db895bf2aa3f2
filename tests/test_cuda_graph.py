"""The training step as a CUDA graph: when it applies, and that it is the eager step.

The equivalence tests need a CUDA GPU and are skipped elsewhere; the device checks run them
(see benchmarks/README.md). The choice logic is tested everywhere.
"""

from __future__ import annotations

import pytest
import torch

from resnet_nb.models import ModelSpec, build_model
from resnet_nb.train import GraphedStep, fit, get_recipe, make_optimizer, resolve_cuda_graph, train_step

from .conftest import Interrupted, stop_after

SPEC = ModelSpec("resnet", 8, "A")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_uses_graphs_on_cuda_only() -> None:
    assert resolve_cuda_graph("auto", CUDA, "fp32") is True
    assert resolve_cuda_graph("auto", CUDA, "bf16") is True
    assert resolve_cuda_graph("auto", CPU, "fp32") is False
    assert resolve_cuda_graph("auto", torch.device("mps"), "fp32") is False
    assert resolve_cuda_graph("auto", CUDA, "fp16") is False  # GradScaler decides on the host
    assert resolve_cuda_graph("auto", CUDA, "fp32", compile=True) is False
    assert resolve_cuda_graph("off", CUDA, "fp32") is False


@pytest.mark.parametrize(("device", "precision", "compile", "match"), [
    (CPU, "fp32", False, "need a CUDA device, and this run is on 'cpu'"),
    (CUDA, "fp16", False, "do not support fp16"),
    (CUDA, "fp32", True, "do not combine"),
])
def test_on_where_it_cannot_apply_is_an_error(device, precision, compile, match) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_cuda_graph("on", device, precision, compile)


def test_bad_setting_is_an_error() -> None:
    with pytest.raises(ValueError, match="cuda_graph must be auto, on or off"):
        resolve_cuda_graph("yes", CUDA, "fp32")


def test_fit_refuses_graphs_on_cpu_before_training(tiny_data) -> None:
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        fit(SPEC, get_recipe("report", epochs=1), tiny_data, device="cpu", cuda_graph="on", progress=False)


# ------------------------------------------------------------------ on a GPU


def _batches(n: int, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(size, 3, 32, 32, generator=g).to(CUDA).contiguous(memory_format=torch.channels_last)
        out.append((x, torch.randint(0, 10, (size,), generator=g).to(CUDA)))
    return out


@needs_cuda
@pytest.mark.parametrize("recipe_name", ["report", "paper"])  # fused Adam, fused SGD with momentum
def test_graphed_step_is_the_eager_step(recipe_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full batches, an lr change (re-capture) and a partial batch (eager on the graph's tensors)."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    recipe = get_recipe(recipe_name)
    plan = _batches(4, 32, 0) + ["lr/10"] + _batches(2, 32, 1) + _batches(1, 8, 2) + _batches(2, 32, 3)

    def train(graphed: bool):
        torch.manual_seed(0)
        model = build_model(SPEC).to(CUDA, memory_format=torch.channels_last).train()
        opt = make_optimizer(recipe, model, CUDA, capturable=graphed)
        step = GraphedStep(model, opt, CUDA, "fp32") if graphed else None
        losses = []
        for item in plan:
            if item == "lr/10":
                for group in opt.param_groups:
                    group["lr"] /= 10
                continue
            x, y = item
            loss, out = step(x, y) if step else train_step(model, opt, x, y, CUDA, "fp32")
            assert out.shape == (len(y), 10)
            losses.append(loss.item())
        return model, opt, losses, step

    eager_model, eager_opt, eager_losses, _ = train(False)
    model, opt, losses, step = train(True)
    assert step.captures == 2  # the first full batch, then the lr change
    assert losses == pytest.approx(eager_losses, rel=1e-4)
    for (name, a), b in zip(model.state_dict().items(), eager_model.state_dict().values()):
        # BN running stats and num_batches_tracked included: the warm-up steps left no trace
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    for p, q in zip(model.parameters(), eager_model.parameters()):
        for key, value in eager_opt.state[q].items():
            torch.testing.assert_close(opt.state[p][key].to(value.device, value.dtype), value, rtol=1e-4, atol=1e-6)


@needs_cuda
def test_graphed_fit_matches_eager_and_resumes(tiny_data, tmp_path) -> None:
    recipe = get_recipe("report", epochs=3, batch_size=16)  # 200 images: 12 full batches and one of 8
    kw = {"device": "cuda", "precision": "fp32", "progress": False}
    eager = fit(SPEC, recipe, tiny_data, seed=0, cuda_graph="off", **kw)
    graphed = fit(SPEC, recipe, tiny_data, seed=0, cuda_graph="on", **kw)
    assert eager.setup["cuda_graph"] is False and graphed.setup["cuda_graph"] is True
    # fit() lets cuDNN pick its fastest (not bitwise-deterministic) kernels, so two runs differ in the
    # last digits and Adam carries that along: an H200 gave 0.3958 vs 0.3964 after 3 epochs. The exact
    # equivalence is test_graphed_step_is_the_eager_step's job; this checks the wiring (captures,
    # the partial batch, checkpoints), where a skipped or doubled step would move the loss by far more.
    for e, g in zip(eager.history, graphed.history, strict=True):
        assert g["train_loss"] == pytest.approx(e["train_loss"], rel=1e-2)
        assert g["test_loss"] == pytest.approx(e["test_loss"], rel=2e-2)

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(SPEC, recipe, tiny_data, seed=0, cuda_graph="on", checkpoint=ckpt, on_epoch=stop_after(1), **kw)
    resumed = fit(SPEC, recipe, tiny_data, seed=0, cuda_graph="on", checkpoint=ckpt, **kw)
    for r, g in zip(resumed.history, graphed.history, strict=True):
        assert r["train_loss"] == pytest.approx(g["train_loss"], rel=1e-2)
