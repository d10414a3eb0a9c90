"""Every CSV jitbot writes opens in a spreadsheet as data: OWASP's leading quote on what would start a formula."""

import csv
import io

import pytest

from jitbot.core.csv_cells import inert, write_csv

PAYLOAD = 'HYPERLINK("http://x","y")'


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_inert_when_text_starts_as_a_formula_then_quoted_as_text(start: str) -> None:
    assert inert(start + PAYLOAD) == "'" + start + PAYLOAD


@pytest.mark.parametrize(
    "cell",
    ["r-abc234", "prod-db", "U0ALICE", "", "2026-11-23T12:00:00+00:00", '{"reason": "=1+1"}', "'=already text", 7],
)
def test_inert_when_ordinary_value_then_unchanged(cell: object) -> None:
    assert inert(cell) == cell


def test_inert_when_lone_dash_then_kept_as_jitbots_none() -> None:
    assert inert("-") == "-" and inert("--") == "'--"


def test_write_csv_when_a_cell_hides_a_formula_after_a_separator_then_one_quoted_cell() -> None:
    out = io.StringIO()
    write_csv(out, ["a", "b"], [["x,=1+1", "@SUM(A1)"]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["a", "b"], ["x,=1+1", "'@SUM(A1)"]]
