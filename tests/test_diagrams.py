"""resnet_nb.diagrams: the SVG diagrams are well-formed, say what the models do, and match the committed files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from resnet_nb import diagrams
from resnet_nb.models import cifar_resnet, count_parameters

FIGURES = Path(__file__).resolve().parents[1] / "book" / "figures"
SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_stem_sizes_are_measured_on_the_models() -> None:
    assert diagrams.stem_feature_sizes("imagenet") == [("image", 32), ("conv1", 16), ("maxpool", 8), ("layer1", 8),
                                                       ("layer2", 4), ("layer3", 2), ("layer4", 1)]
    assert diagrams.stem_feature_sizes("cifar") == [("image", 32), ("conv1", 32), ("maxpool", 32), ("layer1", 32),
                                                    ("layer2", 16), ("layer3", 8), ("layer4", 4)]


def test_stems_diagram_shows_the_sizes_it_is_given() -> None:
    svg = diagrams.stems_svg([("image", 32), ("conv1", 16)], [("image", 32), ("conv1", 32)])
    assert _texts(svg).count("image: 32×32") == 2
    assert {"conv1: 16×16", "conv1: 32×32", "7×7 conv, stride 2", "3×3 conv, stride 1"} <= set(_texts(svg))
    squares = [float(r.get("width")) for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("width") != "100%"]
    assert squares == [48.0, 48.0, 24.0, 48.0]  # drawn to scale: side 1.5 units per pixel
    with pytest.raises(ValueError, match="same steps"):
        diagrams.stems_svg([("image", 32)], [("conv1", 32)])


def test_projection_parameters_match_option_b() -> None:
    model_a, model_b = cifar_resnet(20, "A"), cifar_resnet(20, "B")
    projections = [count_parameters(model_b.layer2[0].shortcut), count_parameters(model_b.layer3[0].shortcut)]
    assert tuple(projections) == diagrams.PROJECTION_PARAMS == (576, 2176)
    assert count_parameters(model_b) - count_parameters(model_a) == sum(diagrams.PROJECTION_PARAMS)
    texts = _texts(diagrams.shortcut_options_svg())
    assert "576 parameters" in texts and "0 parameters" in texts
    assert "Option B, whole net: 576 + 2,176 = 2,752 parameters" in texts


def test_residual_block_diagram_labels() -> None:
    texts = _texts(diagrams.residual_block_svg())
    assert {"Plain block", "Residual block", "F(x) + x", "H(x)"} <= set(texts)
    assert texts.count("3×3 conv + BN") == 4 and texts.count("ReLU") == 4


def test_committed_figures_are_what_the_code_draws(tmp_path: Path) -> None:
    written = diagrams.write_all(tmp_path)
    assert [p.name for p in written] == ["residual_block.svg", "shortcut_options.svg", "stems.svg"]
    for path in written:
        ET.fromstring(path.read_text(encoding="utf-8"))  # well-formed XML
        committed = FIGURES / path.name
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed} is stale: run python -m resnet_nb.diagrams book/figures")
