"""How a delimited text table is written: its column delimiter and decimal mark.

Every domain's CSV reader takes `data.delimiter` and `data.decimal` through these, so
`;`-separated files with decimal commas (spreadsheets saved in European locales) read
the same way everywhere.
"""

from __future__ import annotations

from zoo.errors import DataError

DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|"}
DECIMALS = {"dot": ".", "point": ".", "comma": ","}


def table_delimiter(header: str, given: str | None, default: str) -> str:
    """`given` (a character or a name: comma, semicolon, tab, pipe), else the most frequent of , ; tab in
    the header line (`default`, the suffix's, when none occurs or on a tie)."""
    if given is not None:
        delimiter = DELIMITERS.get(str(given).lower(), str(given))
        if len(delimiter) != 1:
            raise DataError(f"data.delimiter={given!r}: give one character or one of {', '.join(DELIMITERS)}")
        return delimiter
    counts = {candidate: header.count(candidate) for candidate in (default, ",", ";", "\t")}
    best = max(counts, key=counts.get)  # ties keep the first: the suffix's default
    return best if counts[best] else default


def decimal_mark(given: str | None) -> str:
    """`given` ('.', ',', or a name: dot, point, comma); '.' when None."""
    decimal = DECIMALS.get(str(given).lower(), str(given)) if given is not None else "."
    if decimal not in (".", ","):
        raise DataError(f"data.decimal={given!r}: choose '.' or ',' (or dot, comma)")
    return decimal
