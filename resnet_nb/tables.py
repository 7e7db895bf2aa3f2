"""One formatter for every table in the book: readable numbers, no index, no ``NaN``, fits the text width.

``format_table(df)`` returns a :class:`Table`: its HTML (what the book and JupyterLab show) has
thousands separators (``269,722``), fixed decimals, ``%`` signs where asked, "—" for missing
values, the index as an ordinary first column, numbers right-aligned, and headers that may wrap
(the book's CSS, ``_static/book.css``, lets a table that is still too wide scroll inside its box).
Its plain-text form is the same cells as text, so a notebook's stored output is deterministic
(a pandas ``Styler`` prints its memory address and names its HTML with a random id, both of which
nbval would see change on every run).

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from numbers import Integral, Real

import pandas as pd

MISSING = "—"
CSS_CLASS = "resnet-table"


@dataclass(frozen=True, eq=False)
class Table:
    """A formatted table: ``cells`` (strings, as shown) and its ``html``; displays itself in Jupyter."""

    cells: pd.DataFrame
    html: str
    numeric: tuple[str, ...] = field(default=())

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.cells.to_string(index=False)


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return value.strip() in ("", "nan", "NaN", "None")
    return isinstance(value, Real) and math.isnan(float(value))


def _format_number(value: object, decimals: int, percent: bool, scale: float, thousands: bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Integral) and scale == 1.0 and not percent:
        return f"{int(value):,}" if thousands else str(int(value))
    number = float(value) * scale  # type: ignore[arg-type]
    text = f"{number:,.{decimals}f}" if thousands else f"{number:.{decimals}f}"
    return f"{text} %" if percent else text


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _integral_column(values: list[object]) -> bool:
    numbers = [v for v in values if not _is_missing(v)]
    return bool(numbers) and all(isinstance(v, Integral) and not isinstance(v, bool) for v in numbers)


def format_table(df: pd.DataFrame, *, decimals: int | Mapping[str, int] = 2, percent: Iterable[str] = (),
                 fraction_percent: Iterable[str] = (), thousands: bool = True, no_thousands: Iterable[str] = (),
                 caption: str | None = None) -> Table:
    """``df`` as a book table.

    * the index (when it is named or not a plain 0..n-1 range) becomes the first column; no index is shown;
    * integers get thousands separators (``269,722``), except in ``no_thousands`` columns (e.g. years);
    * other floats get ``decimals`` decimals (one number, or per column; columns not named get 2);
    * ``percent`` columns hold percentages and get a ``" %"`` suffix; ``fraction_percent`` columns hold
      fractions (0.9123) and are shown as percentages (``91.23 %``);
    * missing values (NaN, None, empty strings) are shown as "—"; other values as ``str``.
    """
    frame = df.copy()
    if frame.index.name is not None or any(n is not None for n in frame.index.names) or not isinstance(
            frame.index, pd.RangeIndex):
        frame = frame.reset_index()
    frame.columns = [str(c) for c in frame.columns]
    percent_cols, fraction_cols = set(percent), set(fraction_percent)
    unknown = (percent_cols | fraction_cols | set(no_thousands)) - set(frame.columns)
    if isinstance(decimals, Mapping):
        unknown |= set(decimals) - set(frame.columns)
    if unknown:
        raise ValueError(f"format_table: no column(s) {', '.join(sorted(unknown))} in {list(frame.columns)}")
    cells: dict[str, list[str]] = {}
    numeric: list[str] = []
    for col in frame.columns:
        values = list(frame[col].astype(object))
        digits = decimals.get(col, 2) if isinstance(decimals, Mapping) else decimals
        is_pct, is_frac = col in percent_cols, col in fraction_cols
        whole = _integral_column(values) and not (is_pct or is_frac) and not (
            isinstance(decimals, Mapping) and col in decimals)
        sep = thousands and col not in set(no_thousands)
        shown = []
        for v in values:
            if _is_missing(v):
                shown.append(MISSING)
            elif _is_number(v):
                number = int(v) if whole else v  # type: ignore[call-overload]
                shown.append(_format_number(number, digits, is_pct or is_frac, 100.0 if is_frac else 1.0, sep))
            else:
                shown.append(str(v))
        if any(_is_number(v) for v in values):
            numeric.append(col)
        cells[col] = shown
    text = pd.DataFrame(cells, columns=list(frame.columns))
    return Table(cells=text, html=_html(text, numeric, caption), numeric=tuple(numeric))


def _html(cells: pd.DataFrame, numeric: list[str], caption: str | None) -> str:
    """A plain ``<table>`` (no ids, no inline ``<style>``): numbers right-aligned, the same HTML on every run."""
    right = ' class="num" style="text-align: right"'

    def attrs(col: str) -> str:
        return right if col in numeric else ""

    head = "".join(f"<th{attrs(c)}>{escape(c)}</th>" for c in cells.columns)
    rows = "".join("<tr>" + "".join(f"<td{attrs(c)}>{escape(v)}</td>" for c, v in zip(cells.columns, row)) + "</tr>"
                   for row in cells.itertuples(index=False))
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<table class="{CSS_CLASS}">{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
