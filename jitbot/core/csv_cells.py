"""CSV as jitbot writes it: every cell opens in a spreadsheet as data, never as a formula."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import TextIO

# OWASP, CSV Injection (https://owasp.org/www-community/attacks/CSV_Injection): Excel, LibreOffice and Google
# Sheets read a cell starting with one of these as a formula; a leading single quote makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NONE = "-"  # jitbot's own "no value": a refusal's request_id, resource and status


def inert(cell: object) -> object:
    """`cell` as a spreadsheet must show it: text that would start a formula gets OWASP's leading `'`.

    Two things are left as they are. Numbers, because a number is data (and jitbot writes no negative one).
    A lone `-`, because there is nothing after the sign to evaluate and it is jitbot's "none" in three
    audit columns: prefixing it would put `'-` on every refusal row and protect nothing.
    """
    if isinstance(cell, str) and cell != NONE and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def write_csv(
    out: TextIO, header: Sequence[str], rows: Iterable[Iterable[object]], lineterminator: str = "\r\n"
) -> None:
    """The one way jitbot writes CSV (a test keeps `csv` imported here alone), every cell made inert.

    The csv module quotes separators, quotes and line breaks, so a payload cannot open a cell of its own
    further in: OWASP's other half of the rule.
    """
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows([inert(cell) for cell in row] for row in rows)
