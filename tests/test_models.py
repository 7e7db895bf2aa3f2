"""Models: parameter counts against the paper/torchvision, shortcut option A, stems, pickling, specs, init."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from resnet_nb.vocab import shape_facts

from resnet_nb.models import (BasicBlock, CifarResNet, ModelSpec, ZeroPadShortcut, blocks_per_stage, build_model,
                              cifar_resnet, count_parameters, count_weight_layers, he_init, model_table,
                              standard_specs, torchvision_resnet)

PARAMS_A = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
B_EXTRA = 2_752  # two 1x1 projection convs + their BNs: 16*32 + 2*32 + 32*64 + 2*64


@pytest.mark.parametrize("depth", sorted(PARAMS_A))
@pytest.mark.parametrize("shortcut", ["A", "B", None])
def test_cifar_parameter_counts(depth: int, shortcut: str | None) -> None:
    expected = PARAMS_A[depth] + (B_EXTRA if shortcut == "B" else 0)
    assert count_parameters(cifar_resnet(depth, shortcut)) == expected


@pytest.mark.parametrize("depth", sorted(PARAMS_A))
@pytest.mark.parametrize("shortcut", ["A", "B", None])
def test_weight_layers_are_6n_plus_2(depth: int, shortcut: str | None) -> None:
    assert count_weight_layers(cifar_resnet(depth, shortcut)) == depth
    assert count_weight_layers(cifar_resnet(depth, shortcut)) == 6 * blocks_per_stage(depth) + 2


def test_b_extra_is_the_projection_shortcuts() -> None:
    assert B_EXTRA == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    model = cifar_resnet(20, "B")
    shortcut_params = sum(p.numel() for n, p in model.named_parameters() if "shortcut" in n)
    assert shortcut_params == B_EXTRA


@pytest.mark.parametrize("stem,expected", [("imagenet", 11_181_642), ("cifar", 11_173_962)])
def test_torchvision_resnet18_counts(stem: str, expected: int) -> None:
    model = torchvision_resnet(18, stem)
    assert count_parameters(model) == expected
    assert count_weight_layers(model) == 18


@pytest.mark.parametrize("depth", [18, 21, 0, 5, 2, -4, 27])
def test_bad_depth_raises(depth: int) -> None:
    with pytest.raises(ValueError, match=r"6n\+2"):
        cifar_resnet(depth, "A")
    with pytest.raises(ValueError, match=r"6n\+2"):
        ModelSpec("resnet", depth, "A")
    with pytest.raises(ValueError, match=r"6n\+2"):
        ModelSpec("plain", depth)


def test_non_int_depth_raises() -> None:
    with pytest.raises(ValueError, match=r"6n\+2"):
        blocks_per_stage(20.0)  # type: ignore[arg-type]


def test_blocks_per_stage() -> None:
    assert [blocks_per_stage(d) for d in (8, 20, 32, 44, 56, 110, 1202)] == [1, 3, 5, 7, 9, 18, 200]


def test_bad_shortcut_raises() -> None:
    with pytest.raises(ValueError, match="shortcut"):
        CifarResNet(20, "C")  # type: ignore[arg-type]


def test_option_a_shortcut_has_no_parameters_and_zero_pads() -> None:
    model = cifar_resnet(20, "A")
    pads = [m for m in model.modules() if isinstance(m, ZeroPadShortcut)]
    assert len(pads) == 2  # stage 2 and stage 3 entry
    assert all(sum(p.numel() for p in m.parameters()) == 0 for m in pads)
    assert [m.pad_channels for m in pads] == [8, 16]
    assert not any("shortcut" in name for name, _ in model.named_parameters())

    torch.manual_seed(0)
    x = torch.randn(3, 16, 32, 32) + 5.0  # nonzero everywhere
    out = ZeroPadShortcut(8)(x)
    assert out.shape == (3, 32, 16, 16)
    assert torch.equal(out[:, :8], torch.zeros(3, 8, 16, 16))
    assert torch.equal(out[:, 24:], torch.zeros(3, 8, 16, 16))
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])


def test_option_a_block_adds_padded_identity() -> None:
    torch.manual_seed(0)
    block = BasicBlock(16, 32, 2, "A").eval()
    x = torch.randn(2, 16, 8, 8)
    main = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
    expected = torch.relu(main + ZeroPadShortcut(8)(x))
    assert torch.allclose(block(x), expected)


def test_plain_block_has_no_residual() -> None:
    torch.manual_seed(0)
    block = BasicBlock(16, 16, 1, None).eval()
    x = torch.randn(2, 16, 8, 8)
    expected = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x))))))
    assert not block.residual
    assert torch.allclose(block(x), expected)


@pytest.mark.parametrize("spec", [ModelSpec("resnet", 8, "A"), ModelSpec("resnet", 8, "B"), ModelSpec("plain", 8),
                                  ModelSpec("resnet", 20, "A"), ModelSpec("torchvision", 18, stem="imagenet"),
                                  ModelSpec("torchvision", 18, stem="cifar")], ids=lambda s: s.key)
def test_output_shape(spec: ModelSpec) -> None:
    torch.manual_seed(0)
    model = build_model(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_torchvision_34_builds() -> None:
    spec = ModelSpec("torchvision", 34, stem="cifar")
    assert count_weight_layers(build_model(spec)) == 34


@pytest.mark.parametrize("stem,size", [("imagenet", 8), ("cifar", 32)])
def test_torchvision_stem_resolution(stem: str, size: int) -> None:
    model = torchvision_resnet(18, stem).eval()
    seen = {}
    model.layer1.register_forward_hook(lambda m, inp, out: seen.update(inp=inp[0].shape, out=out.shape))
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    assert seen["inp"] == (1, 64, size, size)
    assert seen["out"] == (1, 64, size, size)


def test_torchvision_bad_args() -> None:
    with pytest.raises(ValueError, match="torchvision depth"):
        torchvision_resnet(50)
    with pytest.raises(ValueError, match="stem"):
        torchvision_resnet(18, "tiny")  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", [ModelSpec("resnet", 8, "A"), ModelSpec("resnet", 8, "B"), ModelSpec("plain", 8)],
                         ids=lambda s: s.key)
def test_pickling_round_trip(spec: ModelSpec) -> None:
    torch.manual_seed(0)
    model = build_model(spec)
    model.train()
    model(torch.randn(8, 3, 32, 32))  # move BN running stats away from their defaults
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)

    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    whole = torch.load(buf, weights_only=False).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = build_model(spec)
    fresh.load_state_dict(torch.load(buf))
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(whole(x), ref)
        assert torch.equal(fresh(x), ref)


def test_standard_specs_keys_round_trip() -> None:
    specs = standard_specs()
    assert len(specs) == 5 * 3 + 2 * 2
    keys = [s.key for s in specs]
    assert len(set(keys)) == len(keys)
    assert "resnet20-A" in keys and "plain56" in keys and "tv-resnet18-cifar" in keys and "resnet110-B" in keys
    for spec in specs:
        assert ModelSpec.from_key(spec.key) == spec


@pytest.mark.parametrize("key", ["", "resnet", "resnet20", "resnet20-A-x", "resnetX-A", "plainX", "tv-resnet18",
                                 "vgg16", "resnet21-A", "resnet20-C", "tv-resnet50-cifar", "tv-resnet18-tiny"])
def test_from_key_rejects_garbage(key: str) -> None:
    with pytest.raises(ValueError):
        ModelSpec.from_key(key)


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="resnet", depth=20), "shortcut"),
    (dict(arch="resnet", depth=20, shortcut="C"), "shortcut"),
    (dict(arch="resnet", depth=20, shortcut="A", stem="cifar"), "stem"),
    (dict(arch="plain", depth=20, shortcut="A"), "plain"),
    (dict(arch="plain", depth=20, stem="cifar"), "plain"),
    (dict(arch="torchvision", depth=50, stem="cifar"), "torchvision depth"),
    (dict(arch="torchvision", depth=18), "stem"),
    (dict(arch="torchvision", depth=18, stem="cifar", shortcut="B"), "shortcut"),
    (dict(arch="vgg", depth=16), "arch"),
])
def test_model_spec_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ModelSpec(**kwargs)


def test_model_table_rows() -> None:
    rows = model_table([ModelSpec("resnet", 20, "A"), ModelSpec("plain", 56), ModelSpec("resnet", 20, "B")])
    assert [(r["model"], r["params"], r["weight_layers"]) for r in rows] == [
        ("resnet20-A", 269_722, 20), ("plain56", 853_018, 56), ("resnet20-B", 269_722 + B_EXTRA, 20)]
    assert rows[1]["shortcut"] == "-" and rows[1]["stem"] == "-"


@pytest.mark.parametrize("spec", standard_specs(), ids=lambda s: s.key)
def test_shape_facts_count_what_the_built_net_has(spec: ModelSpec) -> None:
    """The torch-free table (``python -m resnet_nb models``) against the net itself, for every standard model."""
    model = build_model(spec)
    assert shape_facts(spec) == {"params": count_parameters(model), "weight_layers": count_weight_layers(model)}


def test_he_init_std() -> None:
    torch.manual_seed(0)
    model = cifar_resnet(20, "B")
    conv = model.layer3[1].conv1  # 64 -> 64, 3x3: 36,864 weights
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    target = math.sqrt(2 / fan_out)
    before = conv.weight.std().item()
    model.bn1.weight.data.fill_(3.0)
    model.linear.bias.data.fill_(1.0)
    assert he_init(model) is model
    after = conv.weight.std().item()
    assert abs(before - target) / target > 0.3  # PyTorch's default is a different (smaller) scale
    assert after == pytest.approx(target, rel=0.03)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=0.01 * target)
    first = model.conv1  # 3 -> 16: fan_out = 144
    assert first.weight.std().item() == pytest.approx(math.sqrt(2 / 144), rel=0.15)
    assert model.linear.weight.std().item() == pytest.approx(math.sqrt(2 / 10), rel=0.1)
    assert torch.equal(model.linear.bias, torch.zeros(10))
    assert torch.equal(model.bn1.weight, torch.ones(16))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.bias, torch.zeros_like(m.bias))


@pytest.mark.parametrize(("key", "family", "label"), [
    ("resnet20-A", "resnet-A", "ResNet-20 (A)"), ("resnet56-B", "resnet-B", "ResNet-56 (B)"),
    ("plain44", "plain", "plain-44"), ("tv-resnet18-cifar", "tv-cifar", "torchvision ResNet-18 (CIFAR stem)"),
    ("tv-resnet34-imagenet", "tv-imagenet", "torchvision ResNet-34 (ImageNet stem)"),
])
def test_model_spec_family_and_label(key: str, family: str, label: str) -> None:
    spec = ModelSpec.from_key(key)
    assert (spec.family, spec.label, spec.key) == (family, label, key)
