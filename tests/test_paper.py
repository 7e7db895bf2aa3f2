"""The paper chapter's tables and verdicts, from synthetic records."""

from __future__ import annotations

import pandas as pd

from resnet_nb.paper import degradation_verdict, grid_command, table6
from .conftest import make_paper_results

AKA = [{"model": "resnet20-A", "test_error_pct": 18.97, "published_test_error_pct": 8.27}]


def test_table6_side_by_side() -> None:
    df = make_paper_results({"resnet20-A": 3, "plain20": 1}, epochs=2)
    table = table6(df, AKA)
    assert list(table.index[:5]) == ["resnet20-A", "resnet32-A", "resnet44-A", "resnet56-A", "resnet110-A"]
    row = table.loc["resnet20-A"]
    assert row["paper (%)"] == "8.75" and row["params (paper)"] == "0.27M"
    assert row["ours, paper recipe (%)"] == "34.00 ± 0.00 (n=3)"  # test acc 0.5 + 0.08 * 2 for every seed
    assert row["akamaster on our JPEG copy (%)"] == "18.97" and row["JPEG copy effect (points)"] == "+10.70"
    assert table.loc["plain20", "ours, paper recipe (%)"] == "34.00 (n=1 of 3)"
    assert table.loc["resnet110-A", "ours, paper recipe (%)"] == "missing (0 of 5 seeds)"
    assert table.loc["resnet110-A", "akamaster on our JPEG copy (%)"] == "no checkpoint"
    assert grid_command("plain56") == "python -m resnet_nb grid run paper --only 'plain56_paper_s*'"


def test_missing_commands() -> None:
    from resnet_nb.paper import missing_commands

    text = missing_commands(make_paper_results({"resnet20-A": 3, "plain20": 1}, epochs=1))
    lines = text.splitlines()
    assert lines[2] == "- plain20 (1 of 3 seeds): `python -m resnet_nb grid run paper --only 'plain20_paper_s*'`"
    assert "resnet20-A" not in text and len(lines) == 2 + 8
    assert "bash scripts/gpu_paper_session.sh 540 $OUT 3" in lines[0]


def test_degradation_verdict() -> None:
    df = make_paper_results({"plain20": 3, "plain56": 3}, epochs=2)
    df.loc[df["model"] == "plain56", "train_acc"] -= 0.1 + 0.001 * df["seed"]  # 10.0 / 10.1 / 10.2 points lower
    text = degradation_verdict(df, "paper")
    assert "plain-20 − plain-56 +10.10 pt [" in text and "(n = 3; paired t" in text
    assert "degradation **reproduced**" in text
    df.loc[df["model"] == "plain56", "train_acc"] += 0.2
    assert "degradation **contradicted**" in degradation_verdict(df, "paper")
    two = make_paper_results({"plain20": 2, "plain56": 2}, epochs=2)
    assert "**inconclusive** (n = 2 seed(s), fewer than 3)" in degradation_verdict(two, "paper")
    missing = degradation_verdict(pd.DataFrame(columns=df.columns), "report")
    assert "no verdict yet, plain20, plain56 missing" in missing
    assert "grid run report --only 'plain20_*,plain56_*'" in missing


def test_jpeg_effect_text() -> None:
    from resnet_nb.paper import jpeg_effect_text

    recs = [{"depth": d, "test_error_pct": e, "published_test_error_pct": p, "test_images": 10000,
             "provenance": {"dataset_variant": "jpeg"}} for d, e, p in ((20, 18.97, 8.27), (56, 16.80, 6.61))]
    text = jpeg_effect_text(recs)
    assert "(jpeg, 10,000 images)" in text and "10.2 to 10.7 points more" in text
    assert "ResNet-20 18.97 % vs 8.27 %; ResNet-56 16.80 % vs 6.61 %" in text
    assert "python -m resnet_nb akamaster" in jpeg_effect_text([])


def test_akamaster_responses(tiny_data, tmp_path) -> None:
    import torch

    from resnet_nb.models import ModelSpec, build_model
    from resnet_nb.paper import akamaster_responses, imagenet_normalised

    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet", 8, "A"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "resnet8-00.th")
    (tmp_path / "SHA256SUMS").write_text("x  resnet8-00.th\n")
    got = akamaster_responses(tmp_path, tiny_data, keys=("resnet8-A",), n=20)
    assert list(got["model"].unique()) == ["resnet8-A"] and len(got) == 7  # the stem + 3 blocks x 2 convs
    x = imagenet_normalised(tiny_data, 20)
    first_of_class_1 = int(torch.nonzero(tiny_data.test_y == 1)[0])  # 2 images per class: class 1 starts at 2
    want = (tiny_data.test_x[first_of_class_1].float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert x.shape == (20, 3, 32, 32) and torch.allclose(x[2], want)
