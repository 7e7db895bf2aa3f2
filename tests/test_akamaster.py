"""akamaster checkpoints: loading onto our models, evaluation records, the README's numbers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from resnet_nb.akamaster import (DEFAULT_DIR, IMAGENET_MEAN, IMAGENET_STD, checkpoints, evaluate_checkpoint,
                                 load_akamaster, published_errors, read_records, write_records)
from resnet_nb.records import iter_records
from resnet_nb.models import ModelSpec, build_model

README = """# copy
- They were trained ... Its README reports test errors of
  8.27 / 7.37 % for ResNet-8/14.
"""


@pytest.fixture()
def fake_dir(tmp_path: Path) -> Path:
    """A folder laid out like the shared copy: a DataParallel-style checkpoint of a trained-looking ResNet-8."""
    torch.manual_seed(5)
    model = build_model(ModelSpec("resnet", 8, "A"))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-default running stats: eval mode must use them
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "resnet8-0123abcd.th"
    torch.save({"best_prec1": 90.5, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  {path.name}\n")
    (tmp_path / "README.md").write_text(README)
    return tmp_path


def test_load_strips_module_prefix(fake_dir: Path) -> None:
    model, extras = load_akamaster(fake_dir / "resnet8-0123abcd.th", 8)
    saved = torch.load(fake_dir / "resnet8-0123abcd.th", weights_only=True)["state_dict"]
    assert extras == {"best_prec1": 90.5} and not model.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[f"module.{name}"])
    with pytest.raises(RuntimeError, match="size mismatch|Missing key|Unexpected key"):
        load_akamaster(fake_dir / "resnet8-0123abcd.th", 14)  # another depth does not fit


def test_published_errors_from_readme(fake_dir: Path) -> None:
    assert published_errors(fake_dir) == {8: 8.27, 14: 7.37}
    (fake_dir / "README.md").write_text("nothing here")
    with pytest.raises(ValueError, match="no 'test errors of"):
        published_errors(fake_dir)


@pytest.mark.skipif(not (DEFAULT_DIR / "README.md").exists(), reason="the shared akamaster copy is not here")
def test_published_errors_of_the_shared_copy() -> None:
    assert published_errors(DEFAULT_DIR) == {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61}
    assert sorted(checkpoints(DEFAULT_DIR)) == [20, 32, 44, 56]


def test_record_is_the_accuracy_under_imagenet_normalisation(fake_dir: Path, tiny_data) -> None:
    record = evaluate_checkpoint(fake_dir, 8, tiny_data)
    model, _ = load_akamaster(fake_dir / "resnet8-0123abcd.th", 8)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = model((tiny_data.test_x.float() / 255 - mean) / std)
    assert record["test_acc"] == pytest.approx((out.argmax(1) == tiny_data.test_y).float().mean().item())
    assert record["test_loss"] == pytest.approx(F.cross_entropy(out, tiny_data.test_y).item(), rel=1e-5)
    assert record["test_error_pct"] == pytest.approx(100 * (1 - record["test_acc"]))
    assert record["published_test_error_pct"] == 8.27 and record["checkpoint"]["best_prec1"] == 90.5
    assert record["checkpoint"]["sha256"] == (fake_dir / "SHA256SUMS").read_text().split()[0]
    assert record["provenance"]["dataset_checksum"] == tiny_data.checksum and record["test_images"] == 50


def test_write_and_read_records(fake_dir: Path, tiny_data, tmp_path: Path) -> None:
    out = tmp_path / "results" / "akamaster"
    written = write_records(fake_dir, tiny_data, out)
    assert [p.name for p in out.iterdir()] == ["resnet8-A.json"]
    assert read_records(out) == json.loads(json.dumps(written))
    assert list(iter_records(tmp_path / "results")) == []  # not run records: the grid code skips them
    assert read_records(tmp_path / "nothing") == []
    (out / "x.json").write_text('{"kind": "other"}')
    with pytest.raises(ValueError, match="x.json: not an akamaster evaluation record"):
        read_records(out)


def test_a_modified_checkpoint_is_refused(fake_dir: Path, tiny_data) -> None:
    path = fake_dir / "resnet8-0123abcd.th"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match SHA256SUMS"):
        evaluate_checkpoint(fake_dir, 8, tiny_data)


def test_cli_without_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from resnet_nb.__main__ import main

    assert main(["akamaster", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no akamaster checkpoints" in err[0]
