"""The book's diagrams as plain SVG, drawn by code: a plain vs a residual block, shortcut option A vs B,
and torchvision's ImageNet stem vs a CIFAR stem with the feature-map size after each step.

``python -m resnet_nb.diagrams book/figures`` writes them (they are committed; a test checks the
committed files equal what this module draws). The stem diagram's sizes come from
:func:`stem_feature_sizes`, measured on the package's own torchvision adapters, not typed in.
No dependency beyond the standard library (torch only to measure the stems).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path

FONT = "Inter, Helvetica, Arial, sans-serif"
INK, MUTED = "#222", "#555"
CONV, RELU, ADD, SHORTCUT_A, SHORTCUT_B, MAP = "#dbe9f6", "#fdebd0", "#ffffff", "#3182bd", "#31a354", "#9ecae1"


class Svg:
    """A few SVG primitives on a fixed canvas (the figure scales to the text width: viewBox, no width)."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.parts = width, height, [f"<title>{escape(title)}</title>"]

    def text(self, x: float, y: float, s: str, size: int = 14, anchor: str = "middle", color: str = INK,
             weight: str = "normal", italic: bool = False, rotate: int = 0) -> None:
        style = ' font-style="italic"' if italic else ""
        if rotate:
            style += f' transform="rotate({rotate} {x:g} {y:g})"'
        self.parts.append(f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
                          f'font-weight="{weight}"{style}>{escape(s)}</text>')

    def box(self, cx: float, cy: float, w: float, h: float, label: str, fill: str = CONV, size: int = 17,
            stroke: str = INK) -> None:
        self.parts.append(f'<rect x="{cx - w / 2:g}" y="{cy - h / 2:g}" width="{w:g}" height="{h:g}" rx="6" '
                          f'fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>')
        lines = label.split("\n")
        for i, line in enumerate(lines):
            self.text(cx, cy + 5 + (i - (len(lines) - 1) / 2) * (size + 2), line, size)

    def square(self, cx: float, cy: float, side: float, fill: str = MAP) -> None:
        self.parts.append(f'<rect x="{cx - side / 2:g}" y="{cy - side / 2:g}" width="{side:g}" height="{side:g}" '
                          f'fill="{fill}" stroke="{INK}" stroke-width="1"/>')

    def plus(self, cx: float, cy: float, r: float = 13) -> None:
        self.parts.append(f'<circle cx="{cx:g}" cy="{cy:g}" r="{r:g}" fill="{ADD}" stroke="{INK}" stroke-width="1.4"/>')
        self.parts.append(f'<path d="M{cx - r + 5:g},{cy:g} H{cx + r - 5:g} M{cx:g},{cy - r + 5:g} V{cy + r - 5:g}" '
                          f'stroke="{INK}" stroke-width="1.8"/>')

    def arrow(self, points: Sequence[tuple[float, float]], color: str = INK, dashed: bool = False) -> None:
        d = "M" + " L".join(f"{x:g},{y:g}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        marker = "head-" + color.lstrip("#")
        self.parts.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6"{dash} marker-end="url(#{marker})"/>')

    def render(self) -> str:
        colors = sorted({p.split('marker-end="url(#head-')[1].split(")")[0] for p in self.parts if "marker-end" in p})
        markers = "".join(f'<marker id="head-{c}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                          f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#{c}"/></marker>' for c in colors)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'font-family="{FONT}">{self.parts[0]}<defs>{markers}</defs>'
                f'<rect width="100%" height="100%" fill="#fff"/>' + "".join(self.parts[1:]) + "</svg>\n")


# Sizes in SVG units: the figures are about 500 units wide and shown at the text width, so a 17-unit
# font stays readable on a 390 px phone (about 11 px there).
LABEL, TITLE, NOTE = 17, 20, 15


def _block(svg: Svg, cx: float, top: float, residual: bool, first_conv: str, second_conv: str,
           shortcut: str = "", shortcut_color: str = INK, out_label: str = "", show_f: bool = True) -> None:
    """One basic block drawn downwards from ``top``: conv-BN, ReLU, conv-BN, (+ shortcut), ReLU."""
    w, h = 176, 46 if "\n" in first_conv else 38
    ys = [top + 42, top + 104, top + 166, top + 232, top + 290]  # conv1, relu, conv2, add, relu
    svg.text(cx, top + 6, "x", LABEL + 2, italic=True)
    svg.arrow([(cx, top + 11), (cx, ys[0] - h / 2)])
    svg.box(cx, ys[0], w, h, first_conv, size=16 if "\n" in first_conv else LABEL)
    svg.arrow([(cx, ys[0] + h / 2), (cx, ys[1] - 15)])
    svg.box(cx, ys[1], 84, 30, "ReLU", RELU)
    svg.arrow([(cx, ys[1] + 15), (cx, ys[2] - h / 2)])
    svg.box(cx, ys[2], w, h, second_conv, size=16 if "\n" in second_conv else LABEL)
    if residual:
        svg.arrow([(cx, ys[2] + h / 2), (cx, ys[3] - 14)])
        svg.plus(cx, ys[3])
        svg.arrow([(cx, ys[3] + 13), (cx, ys[4] - 15)])
        right = cx + w / 2 + 20
        svg.arrow([(cx, top + 19), (right, top + 19), (right, ys[3]), (cx + 15, ys[3])], shortcut_color)
        svg.text(right + 17, (top + ys[3]) / 2 + 12, shortcut or "identity: x", NOTE, color=shortcut_color, rotate=90)
        if show_f:
            svg.text(cx - w / 2 - 6, (ys[0] + ys[2]) / 2 + 6, "F(x)", LABEL + 1, anchor="end", italic=True)
    else:
        svg.arrow([(cx, ys[2] + h / 2), (cx, ys[4] - 15)])
    svg.box(cx, ys[4], 84, 30, "ReLU", RELU)
    svg.arrow([(cx, ys[4] + 15), (cx, ys[4] + 42)])
    svg.text(cx, ys[4] + 62, out_label or ("F(x) + x" if residual else "H(x)"), LABEL + 2, italic=True)


def residual_block_svg() -> str:
    """Plain block (left) vs residual block (right): the same layers, the residual adds x before the last ReLU."""
    svg = Svg(500, 400, "A plain block and a residual block")
    svg.text(110, 26, "Plain block", TITLE, weight="bold")
    svg.text(335, 26, "Residual block", TITLE, weight="bold")
    _block(svg, 110, 44, False, "3×3 conv + BN", "3×3 conv + BN")
    _block(svg, 335, 44, True, "3×3 conv + BN", "3×3 conv + BN", "identity shortcut: x")
    return svg.render()


# Parameters of option B's projections (1x1 conv, no bias, + BN): 16 -> 32 and 32 -> 64 channels.
PROJECTION_PARAMS = (16 * 32 + 2 * 32, 32 * 64 + 2 * 64)  # (576, 2176); tests check them on the models


def shortcut_options_svg() -> str:
    """The first block of a stage (16 → 32 channels, 32×32 → 16×16): option A vs option B shortcut."""
    first, second = PROJECTION_PARAMS
    svg = Svg(520, 536, "Shortcut option A and option B where a stage begins")
    for cx, name, color, short, details in (
            (115, "Option A", SHORTCUT_A, "zero-padding identity",
             ["every 2nd pixel,", "+ 16 zero channels:", "0 parameters"]),
            (385, "Option B", SHORTCUT_B, "projection",
             ["1×1 conv, stride 2,", "16 → 32 channels, + BN:", f"{first:,} parameters"])):
        svg.text(cx + 10, 26, name, TITLE, weight="bold")
        svg.text(cx, 52, "in: 16 ch, 32×32", NOTE, color=MUTED)
        _block(svg, cx, 72, True, "3×3 conv, stride 2\n16 → 32 + BN", "3×3 conv\n32 → 32 + BN", short, color,
               "out: 32 ch, 16×16", show_f=False)
        for i, line in enumerate(details):
            svg.text(cx + 10, 452 + 20 * i, line, NOTE + 1, color=color, weight="bold" if i == 2 else "normal")
    svg.text(260, 526, f"Option B, whole net: {first:,} + {second:,} = {first + second:,} parameters", NOTE, color=MUTED)
    return svg.render()


def stem_feature_sizes(stem: str, image_size: int = 32) -> list[tuple[str, int]]:
    """(step, side of the feature map after it) for torchvision's ResNet-18 with ``stem``, measured by a forward pass."""
    import torch

    from .models import torchvision_resnet

    model = torchvision_resnet(18, stem).eval()  # type: ignore[arg-type]
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    sizes: dict[str, int] = {}
    handles = [getattr(model, n).register_forward_hook(
        lambda _m, _i, out, n=n: sizes.__setitem__(n, int(out.shape[-1]))) for n in names]
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    for handle in handles:
        handle.remove()
    return [("image", image_size)] + [(n, sizes[n]) for n in names]


_STEP_TEXT = {
    "imagenet": {"image": "CIFAR-10 image", "conv1": "7×7 conv, stride 2", "maxpool": "3×3 max-pool, stride 2"},
    "cifar": {"image": "CIFAR-10 image", "conv1": "3×3 conv, stride 1", "maxpool": "none (identity)"},
}
_STAGE_TEXT = {"layer1": "2 blocks, 64 channels", "layer2": "2 blocks, 128 ch, stride 2",
               "layer3": "2 blocks, 256 ch, stride 2", "layer4": "2 blocks, 512 ch, stride 2"}


def stems_svg(imagenet: Sequence[tuple[str, int]], cifar: Sequence[tuple[str, int]]) -> str:
    """Feature-map size after each step of ResNet-18 on a 32×32 image: ImageNet stem (left) vs CIFAR stem (right).

    Squares are drawn to scale (side ∝ pixels), so the reader sees how little is left with the ImageNet stem.
    """
    if [s for s, _ in imagenet] != [s for s, _ in cifar]:
        raise ValueError("both stems must list the same steps")
    row, top, scale = 86, 72, 1.5
    svg = Svg(500, top + row * len(imagenet) + 6, "ResNet-18 on a 32×32 image: ImageNet stem vs CIFAR stem")
    for left, title, sub in ((0, "ImageNet stem", "torchvision, as shipped"), (255, "CIFAR stem", "3×3 conv, no max-pool")):
        svg.text(left + 10, 26, title, TITLE, anchor="start", weight="bold")
        svg.text(left + 10, 50, sub, NOTE, anchor="start", color=MUTED)
    for i, ((step, a), (_, b)) in enumerate(zip(imagenet, cifar)):
        cy = top + row * i + row / 2
        for left, stem, side in ((0, "imagenet", a), (255, "cifar", b)):
            sx = left + 36
            svg.square(sx, cy, max(2.0, side * scale))
            svg.text(sx + 34, cy - 2, f"{step}: {side}×{side}", LABEL, anchor="start", weight="bold")
            detail = _STEP_TEXT[stem].get(step) or _STAGE_TEXT.get(step, "")
            svg.text(sx + 34, cy + 19, detail, NOTE - 1, anchor="start", color=MUTED)
            if i:
                svg.arrow([(sx, cy - row + 16 * scale + 4), (sx, cy - 16 * scale - 4)], MUTED)
    return svg.render()


def write_all(folder: Path) -> list[Path]:
    """Write every diagram into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    drawings = {
        "residual_block.svg": residual_block_svg(),
        "shortcut_options.svg": shortcut_options_svg(),
        "stems.svg": stems_svg(stem_feature_sizes("imagenet"), stem_feature_sizes("cifar")),
    }
    paths = []
    for name, text in drawings.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "book/figures")
    for written in write_all(out):
        print(f"wrote {written}")
