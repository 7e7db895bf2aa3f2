"""The ledger in one figure: a forest plot of every tested line, its estimate with the 95 % interval,
the claim's region drawn behind it (the claimed side of zero, the ± band of a similarity, the stated
value with its tolerance), coloured by verdict, robust lines filled and fragile ones hollow, the
claim's quote on hover. One panel per unit (points, %, nats): different units never share an axis.

Labels sit above their line inside the plot, not beside the axis, so that a phone's narrow width
cuts none of them; the figure keeps one row per line there too (``meta.phone_plot_px`` tells
``_static/phone-figures.js`` not to squeeze it).

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .claims import Direction, Finding, Similar, Value
from .plots import _layout, empty_figure

VERDICT_COLOURS = {"reproduced": "#1a9850", "contradicted": "#d73027", "not matched": "#7b3294",
                   "inconclusive": "#6f6f6f"}
PANELS = (("pt", "accuracy differences (points)"), ("%", "figures the report states (%)"),
          ("nats", "loss differences (nats)"))
ROW_PX = 46  # per line: its label above, its interval below
LABEL_CHARS = 46  # a label longer than this wraps (a 390 px phone holds about 54 characters of 11 px text)


def label(f: Finding) -> str:
    """The line's label on the figure: its source and what it compares (parenthetical detail left to the
    hover), wrapped to at most two lines that fit a phone."""
    section = f.claim.source.replace("report ", "").replace("our extension of ", "ext. of ")
    short = f.scope
    while (shorter := re.sub(r"\s*\([^()]*\)", "", short)) != short:  # innermost parentheses first
        short = shorter
    short = re.sub(r"(epoch|depth|step) (\d)", "\\1\u00a0\\2", short.replace("`", "").strip(" :"))  # kept on one line
    lines = textwrap.wrap(f"{section} · {short}", LABEL_CHARS)
    if len(lines) > 2:
        lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), LABEL_CHARS, placeholder=" …")]
    return "<br>".join(lines)


def _region(f: Finding, lo: float, hi: float) -> tuple[float, float] | None:
    r = f.rule
    if isinstance(r, Direction):
        return (0.0, hi) if r.sign > 0 else (lo, 0.0)
    if isinstance(r, Similar):
        return (-r.margin, r.margin)
    if isinstance(r, Value):
        return (r.claimed - r.tolerance, r.claimed + r.tolerance)
    return None


def _escape(text: str) -> str:
    """Free text for plotly's pseudo-HTML: a bare < or > (as in "claimed < 0") must not read as a tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _hover(f: Finding) -> str:
    def wrap(text: str) -> str:
        return "<br>".join(_escape(line) for line in textwrap.wrap(text, 60))

    flips = "" if not f.flips else "<br>changes under: " + "<br>  ".join(_escape(x) for x in f.flips)
    return (f"<b>{_escape(f.claim.source)}</b> ({f.category})<br>{wrap(f.scope)}<br>"
            f"estimate {_escape(f.estimate_text())}, n = {f.n_text()}<br>claimed: {_escape(f.region_text())}<br>"
            f"<b>{f.verdict}</b>, {f.robustness or 'robustness not judged'}{flips}<br>"
            f"<i>{wrap(f'“{f.claim.text}”')}</i>")


def forest_figure(findings: Sequence[Finding], title: str = "The ledger: every tested line") -> go.Figure:
    """The forest plot of ``findings`` (lines without records are left out and counted in the caption)."""
    tested = [f for f in findings if f.comparison is not None and f.verdict != "not tested"]
    if not tested:
        return empty_figure("No line of the ledger has records yet.", title)
    panels = [(unit, name, [f for f in tested if f.unit == unit]) for unit, name in PANELS]
    panels = [p for p in panels if p[2]]
    heights = [len(p[2]) for p in panels]
    fig = make_subplots(rows=len(panels), cols=1, row_heights=heights, vertical_spacing=0.14 / len(panels),
                        subplot_titles=[name for _, name, _ in panels])
    shown: set[str] = set()
    for row, (unit, _, lines) in enumerate(panels, start=1):
        lows = [min(f.comparison.lo, f.comparison.estimate) for f in lines]
        highs = [max(f.comparison.hi, f.comparison.estimate) for f in lines]
        bounded = [b for f in lines if isinstance(f.rule, (Similar, Value)) for b in _region(f, 0, 0)]
        lo, hi = min(lows + bounded + [0.0]), max(highs + bounded + [0.0])
        pad = 0.08 * (hi - lo or 1.0)
        lo, hi = lo - pad, hi + pad
        n = len(lines)
        for i, f in enumerate(lines):
            y = n - 1 - i
            region = _region(f, lo, hi)
            if region is not None:
                fig.add_shape(type="rect", x0=region[0], x1=region[1], y0=y - 0.32, y1=y + 0.12, row=row, col=1,
                              fillcolor="rgba(26,152,80,0.13)", line={"width": 0}, layer="below")
            if isinstance(f.rule, Value):
                fig.add_shape(type="line", x0=f.rule.claimed, x1=f.rule.claimed, y0=y - 0.32, y1=y + 0.12, row=row,
                              col=1, line={"color": "#1a9850", "width": 2, "dash": "dot"})
            fig.add_annotation(text=label(f), xref=f"x{row if row > 1 else ''} domain", x=0, xanchor="left",
                               yref=f"y{row if row > 1 else ''}", y=y + 0.14, yanchor="bottom", showarrow=False,
                               align="left", font={"size": 11, "color": "#333"})
            c = f.comparison
            colour = VERDICT_COLOURS.get(f.verdict, "#6f6f6f")
            fragile = f.robustness == "fragile"
            name = f.verdict
            fig.add_trace(go.Scatter(
                x=[c.estimate], y=[y - 0.1], mode="markers", name=name, legendgroup=name, showlegend=False,
                error_x={"type": "data", "symmetric": False, "array": [max(c.hi - c.estimate, 0)],
                         "arrayminus": [max(c.estimate - c.lo, 0)], "color": colour, "thickness": 2, "width": 4},
                marker={"color": "white" if fragile else colour, "size": 11, "symbol": "circle",
                        "line": {"color": colour, "width": 2.5}},
                hovertemplate=_hover(f) + "<extra></extra>"), row=row, col=1)
            shown.add(name)
        fig.update_yaxes(range=[-0.6, n - 0.35], showticklabels=False, showgrid=False, zeroline=False, fixedrange=True,
                         row=row, col=1)
        fig.update_xaxes(range=[lo, hi], zeroline=True, zerolinecolor="#999", zerolinewidth=1.5,
                         title_text={"pt": "estimate, points", "%": "estimate, %", "nats": "estimate, nats"}[unit],
                         title_standoff=4, row=row, col=1)
    for name in (v for v in VERDICT_COLOURS if v in shown):  # legend swatches: filled, whatever the first line is
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, legendgroup=name,
                                 marker={"color": VERDICT_COLOURS[name], "size": 11}), row=1, col=1)
    for kind, symbol_fill in (("robust (every reading agrees)", "#444"), ("fragile (a reading changes it)", "white")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=kind,
                                 marker={"color": symbol_fill, "size": 11, "line": {"color": "#444", "width": 2.5}}),
                      row=1, col=1)
    untested = len(findings) - len(tested)
    note = ("bar: 95 % interval; green band: the claim's region (the claimed side of zero, the ± 1 point band, or "
            "the stated value ± its tolerance, dotted) · filled: robust, hollow: fragile (hover for the readings "
            f"that change it) · {untested} line(s) not yet tested (no records) are not drawn")
    plot_px = ROW_PX * len(tested) + 60 * len(panels)
    # on a phone (_static/phone-figures.js): one row per line still, and room for the first panel's title
    fig.update_layout(legend={"orientation": "h"}, meta={"phone_plot_px": plot_px, "phone_top_px": 84})
    fig = _layout(fig, title, note, height=plot_px + 60)
    height = float(fig.layout.height)
    fig.update_layout(margin={"l": 12, "r": 12, "t": 136},  # title, two rows of legend, the first panel's title
                      legend={"y": 1 - 50 / height, "yanchor": "top", "yref": "container", "x": 0.01})
    return fig
