"""resnet_nb.tables.format_table: the one table formatter of the book."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from resnet_nb.tables import MISSING, format_table


def test_thousands_no_index_and_missing_values() -> None:
    df = pd.DataFrame({"params A": [269722, 1727962], "paper": ["0.27M", ""], "err": [8.75, np.nan]},
                      index=pd.Index([20, 110], name="depth"))
    table = format_table(df)
    assert list(table.cells.columns) == ["depth", "params A", "paper", "err"]
    assert table.cells.values.tolist() == [["20", "269,722", "0.27M", "8.75"], ["110", "1,727,962", MISSING, MISSING]]
    assert "NaN" not in table.html and "nan" not in repr(table)
    assert "<th>depth</th>" in table.html or '<th class="num" style="text-align: right">depth</th>' in table.html
    assert table.html.count("<tr>") == 3  # header + 2 rows: no index row, no extra header level


def test_percentages_and_decimals() -> None:
    df = pd.DataFrame({"acc": [0.91234, 0.5], "improvement_%": [28.456, -3.0], "loss": [0.123456, 2.0]})
    table = format_table(df, fraction_percent=["acc"], percent=["improvement_%"], decimals={"improvement_%": 1, "loss": 3})
    assert table.cells.values.tolist() == [["91.23 %", "28.5 %", "0.123"], ["50.00 %", "-3.0 %", "2.000"]]


def test_floats_keep_their_decimals_and_default_range_index_is_dropped() -> None:
    table = format_table(pd.DataFrame({"ratio": [1.0, 3.0947]}))
    assert list(table.cells.columns) == ["ratio"]
    assert table.cells["ratio"].tolist() == ["1.00", "3.09"]


def test_no_thousands_columns_and_text_left_alone() -> None:
    table = format_table(pd.DataFrame({"year": [2015], "n": [12345], "who": ["He <et al.>"]}), no_thousands=["year"])
    assert table.cells.values.tolist() == [["2015", "12,345", "He <et al.>"]]
    assert "He &lt;et al.&gt;" in table.html  # escaped, not raw HTML


def test_html_is_deterministic_and_numbers_right_aligned() -> None:
    df = pd.DataFrame({"model": ["resnet20-A"], "params": [269722]})
    first, second = format_table(df, caption="Parameters"), format_table(df, caption="Parameters")
    assert first.html == second.html and repr(first) == repr(second)
    assert first.html.startswith('<table class="resnet-table"><caption>Parameters</caption>')
    assert '<td class="num" style="text-align: right">269,722</td>' in first.html
    assert "<td>resnet20-A</td>" in first.html
    assert first._repr_html_() == first.html


def test_unknown_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no column"):
        format_table(pd.DataFrame({"a": [1]}), percent=["b"])
