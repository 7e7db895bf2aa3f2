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


@pytest.mark.slow
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
    with pytest.raises(ValueError, match="x.json: not an akamaster record of kind akamaster-eval"):
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


def test_jpeg_roundtrip_keeps_the_shape_and_loses_more_at_lower_quality() -> None:
    from resnet_nb.akamaster import jpeg_roundtrip

    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8)
    images = torch.stack([ramp.view(1, 1, 32).expand(3, 32, 32), ramp.view(1, 32, 1).expand(3, 32, 32)]).contiguous()
    high, low = jpeg_roundtrip(images, 95), jpeg_roundtrip(images, 10)
    assert high.shape == images.shape and high.dtype == torch.uint8
    diff = [float((x.float() - images.float()).abs().mean()) for x in (high, low)]
    assert diff[0] < 2.0 and diff[1] > diff[0]
    assert torch.equal(jpeg_roundtrip(images, 75), jpeg_roundtrip(images, 75))  # deterministic


def test_roundtrip_record_is_the_error_before_and_after_one_more_jpeg_pass(fake_dir: Path, tiny_data,
                                                                            tmp_path: Path) -> None:
    from resnet_nb.akamaster import (jpeg_roundtrip, read_roundtrip_records, roundtrip_record, roundtrip_text,
                                     write_roundtrip_records)

    record = roundtrip_record(fake_dir, 8, tiny_data, quality=50)
    model, _ = load_akamaster(fake_dir / "resnet8-0123abcd.th", 8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        errors = [100 * (1 - (model((x.float() / 255 - mean) / std).argmax(1) == tiny_data.test_y).float().mean().item())
                  for x in (tiny_data.test_x, jpeg_roundtrip(tiny_data.test_x, 50))]
    assert record["test_error_pct"] == pytest.approx(errors[0]) and record["roundtrip_error_pct"] == pytest.approx(errors[1])
    assert record["test_error_pct"] == pytest.approx(evaluate_checkpoint(fake_dir, 8, tiny_data)["test_error_pct"])
    assert record["extra_error_pts"] == pytest.approx(errors[1] - errors[0]) and record["quality"] == 50
    assert record["provenance"]["dataset_checksum"] == tiny_data.checksum and record["kind"] == "akamaster-jpeg-roundtrip"
    out = tmp_path / "results" / "akamaster" / "roundtrip"
    written = write_roundtrip_records(fake_dir, tiny_data, out, quality=50)
    assert read_roundtrip_records(out) == json.loads(json.dumps(written))
    assert list(iter_records(tmp_path / "results")) == []  # not run records: the grid code skips them
    assert read_records(tmp_path / "results" / "akamaster") == []  # nor are they evaluation records
    (out / "x.json").write_text('{"kind": "akamaster-eval"}')
    with pytest.raises(ValueError, match="not an akamaster record of kind akamaster-jpeg-roundtrip"):
        read_roundtrip_records(out)
    records = [{"depth": 20, "quality": 75, "encoder": "PIL", "test_error_pct": 19.0, "roundtrip_error_pct": 20.5,
                "extra_error_pts": 1.5},
               {"depth": 56, "quality": 75, "encoder": "PIL", "test_error_pct": 17.0, "roundtrip_error_pct": 17.25,
                "extra_error_pts": 0.25}]
    text = roundtrip_text(records)
    assert text.startswith("**A control, cheap and partial.** One more JPEG pass over the test copy (quality 75, PIL) "
                           "costs the same nets +0.25 to +1.50 points more (ResNet-20 19.00 → 20.50 %; ResNet-56 "
                           "17.00 → 17.25 %).")
    assert "neither measures the first pass's cost nor rules out another cause" in text
    assert roundtrip_text([]).startswith("No JPEG round-trip control yet")
