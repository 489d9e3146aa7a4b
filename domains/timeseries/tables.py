"""Reading the user's series: wide or long CSV/Parquet, checked row by row.

Wide (the ETT layout): a date column and one numeric column per channel.
Long (neuralforecast's layout): columns `unique_id`, `ds`, `y`; each id becomes a channel.

Problems are reported as one `DataError` naming the file, column and line (CSV line
numbers count the header as line 1; Parquet rows count from 1). Missing values and
missing timestamps are errors unless a fill policy is chosen (`fill`):
`interpolate` (linear in time, edges held), `ffill` (carry forward, then back at the
start) or `zero`. A fill logs how many values it made up per series and refuses a series
whose made-up share is above `max_fill_fraction` (default 0.2; `data.max_fill_fraction=1`
allows any): a series with 40 rows on a 600-step grid would otherwise be 93% interpolation.
Only the columns (series) a run uses are checked: `columns`, or the target alone for
univariate runs, so a broken column the run ignores is no error.

CSV dialects: the delimiter is `,`, `;` or a tab, read off the header line unless
`delimiter` names it (`data.delimiter=semicolon`); decimal commas (`1,5`, common in
spreadsheets saved in European locales) are read when `decimal=","` (`data.decimal=comma`).
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from zoo.dialect import decimal_mark, table_delimiter
from zoo.errors import DataError

FILL_POLICIES = ("error", "interpolate", "ffill", "zero")
DEFAULT_MAX_FILL_FRACTION = 0.2

log = logging.getLogger(__name__)


def _where(path: str, row: int, parquet: bool) -> str:
    return f"{path} row {row + 1}" if parquet else f"{path}:{row + 2}"


def csv_delimiter(file: Path, given: str | None, default: str) -> str:
    """`data.delimiter`, else detected from the file's header line (`zoo.dialect.table_delimiter`)."""
    header = ""
    if given is None:
        try:
            with open(file, encoding="utf-8", errors="replace") as handle:
                header = handle.readline()
        except OSError:
            return default  # pandas reports the reason below
    return table_delimiter(header, given, default)


def csv_decimal(given: str | None, delimiter: str) -> str:
    decimal = decimal_mark(given)
    if decimal == delimiter:
        raise DataError(
            f"data.decimal={given!r} is also the column delimiter; decimal commas need ';' or tab between columns"
        )
    return decimal


def read_file(path: str, delimiter: str | None = None, decimal: str | None = ".") -> tuple[pd.DataFrame, bool]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: no such file; give data.path=<file.csv|file.parquet>")
    suffix = file.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(file), True
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"{path}: not a readable Parquet file ({_first_line(err)})") from err
    if suffix in (".csv", ".tsv", ".txt"):
        sep = csv_delimiter(file, delimiter, "\t" if suffix == ".tsv" else ",")
        point = csv_decimal(decimal, sep)
        try:
            return pd.read_csv(file, sep=sep, decimal=point), False
        except pd.errors.EmptyDataError as err:
            raise DataError(f"{path}: the file is empty; give a header line and rows") from err
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise DataError(f"{path}: not a readable CSV ({_first_line(err)})") from err
    raise DataError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _parse_dates(values: pd.Series, path: str, column: str, parquet: bool) -> pd.DatetimeIndex:
    """Row labels of `values` are the file's row numbers (0 = first data row)."""
    dates = pd.to_datetime(values, errors="coerce")  # the format is inferred from the first row
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        raise DataError(
            f"{_where(path, values.index[bad[0]], parquet)}: column {column!r} value {values.iloc[bad[0]]!r} is "
            "not a timestamp"
        )
    return pd.DatetimeIndex(dates)


def _empty_cell(path: str, row: int, column: str, parquet: bool, what: str = "") -> DataError:
    return DataError(
        f"{_where(path, row, parquet)}: column {column!r} is empty{what}; fill missing values with "
        "data.fill=interpolate|ffill|zero"
    )


def long_to_wide(
    frame: pd.DataFrame,
    path: str,
    id_col: str,
    ds_col: str,
    y_col: str,
    parquet: bool,
    series: list[str] | None = None,
    fill: str = "error",
) -> pd.DataFrame:
    """One column per `unique_id` (only `series` if given), indexed by `ds` (rows may come in any order)."""
    ids = frame[id_col].astype(str)
    if series is not None:
        present = set(ids)
        unknown = [s for s in series if s not in present]
        if unknown:
            raise DataError(
                f"{path}: no series {unknown[0]!r} in column {id_col!r} (series: "
                f"{', '.join(sorted(present)[:10])}); fix data.columns"
            )
        frame, ids = frame[ids.isin(series)], ids[ids.isin(series)]
    dates = _parse_dates(frame[ds_col], path, ds_col, parquet)
    keys = pd.DataFrame({"id": ids.to_numpy(), "ds": dates})
    duplicated = np.flatnonzero(keys.duplicated().to_numpy())
    if len(duplicated):
        row = duplicated[0]
        raise DataError(
            f"{_where(path, frame.index[row], parquet)}: series {keys.id.iloc[row]!r} repeats timestamp "
            f"{dates[row]}; keep one row per (unique_id, ds)"
        )
    values = _numeric(frame[y_col], path, y_col, parquet)
    empty = np.flatnonzero(np.isnan(values))
    if fill == "error" and len(empty):
        raise _empty_cell(path, frame.index[empty[0]], y_col, parquet, f" (series {keys.id.iloc[empty[0]]!r})")
    wide = pd.DataFrame({"id": keys.id, "ds": dates, "y": values}).pivot(index="ds", columns="id", values="y")
    wide.columns = [str(c) for c in wide.columns]
    return wide.sort_index()


def _numeric(values: pd.Series, path: str, column: str, parquet: bool) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & values.notna().to_numpy())
    if len(bad):
        value = values.iloc[bad[0]]
        hint = (
            "the file writes decimal commas: add data.decimal=comma"
            if re.fullmatch(r"\s*[-+]?\d*,\d+\s*", str(value))
            else "fix it, or choose the numeric columns with data.columns=[...]"
        )
        raise DataError(
            f"{_where(path, values.index[bad[0]], parquet)}: column {column!r} value {value!r} is not a number; {hint}"
        )
    infinite = np.flatnonzero(np.isinf(numbers.to_numpy(dtype=np.float64)))
    if len(infinite):  # it would turn every loss of the run into NaN
        raise DataError(
            f"{_where(path, values.index[infinite[0]], parquet)}: column {column!r} value "
            f"{str(values.iloc[infinite[0]])!r} is not finite; replace it with a number, or leave the cell empty and "
            "set data.fill"
        )
    return numbers.to_numpy(dtype=np.float64)


def wide_frame(
    frame: pd.DataFrame, path: str, date_col: str, columns: list[str] | None, parquet: bool, fill: str = "error"
) -> pd.DataFrame:
    """Validated wide frame: strictly increasing DatetimeIndex, float columns; row i is the file's row i."""
    if date_col not in frame.columns:
        raise DataError(
            f"{path}: no date column {date_col!r} (columns: {', '.join(map(str, frame.columns))}); set "
            "data.date_col=<name>"
        )
    frame = frame.reset_index(drop=True)
    dates = _parse_dates(frame[date_col], path, date_col, parquet)
    steps = np.diff(dates.asi8)
    if (steps == 0).any():
        row = int(np.flatnonzero(steps == 0)[0]) + 1
        raise DataError(
            f"{_where(path, row, parquet)}: duplicate timestamp {dates[row]} (also on the previous row); keep "
            "one row per timestamp"
        )
    if (steps < 0).any():
        row = int(np.flatnonzero(steps < 0)[0]) + 1
        raise DataError(
            f"{_where(path, row, parquet)}: timestamp {dates[row]} is earlier than the row before "
            f"({dates[row - 1]}); sort the file by {date_col!r}"
        )
    names = columns or [c for c in frame.columns if c != date_col]
    unknown = [c for c in names if c not in frame.columns]
    if unknown:
        raise DataError(
            f"{path}: no column {unknown[0]!r} (columns: {', '.join(map(str, frame.columns))}); fix data.columns"
        )
    if not names:
        raise DataError(f"{path}: no value columns besides {date_col!r}")
    values = {str(c): _numeric(frame[c], path, str(c), parquet) for c in names}
    if fill == "error":
        for name, column in values.items():
            empty = np.flatnonzero(np.isnan(column))
            if len(empty):
                raise _empty_cell(path, empty[0], name, parquet, f" (at {dates[empty[0]]})")
    return pd.DataFrame(values, index=dates)


def infer_frequency(index: pd.DatetimeIndex, path: str) -> str:
    """Pandas alias of the sampling step; with gaps, the most common step."""
    if len(index) < 3:
        raise DataError(f"{path}: {len(index)} timestamps are too few to tell the frequency; set data.freq")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 announces an offset return type; freqstr reads both
        inferred = pd.infer_freq(index)
    freq = getattr(inferred, "freqstr", inferred)
    if freq is None:
        steps, counts = np.unique(np.diff(index.as_unit("ns").asi8), return_counts=True)
        step = pd.Timedelta(int(steps[counts.argmax()]), unit="ns")
        if step >= pd.Timedelta(days=28):
            raise DataError(
                f"{path}: cannot infer the frequency of irregular monthly-or-longer timestamps; set data.freq "
                "(e.g. MS, QS, YS)"
            )
        freq = to_offset(step).freqstr
    return freq


def fill_missing(
    frame: pd.DataFrame,
    freq: str,
    fill: str,
    path: str,
    where=None,
    max_fraction: float = DEFAULT_MAX_FILL_FRACTION,
) -> pd.DataFrame:
    """Put the frame on its regular grid and handle missing timestamps and values by `fill`.

    `where(position)` names the file row of a frame position (wide files); long files have
    no row for a missing (series, timestamp), so their errors name the series and time.
    A fill makes up at most `max_fraction` of any series (see the module docstring).
    """
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=freq)
    off_grid = frame.index.difference(grid)
    locate = (lambda stamp: where(int(frame.index.searchsorted(stamp)))) if where else (lambda stamp: path)
    if len(off_grid):
        raise DataError(
            f"{locate(off_grid[0])}: timestamp {off_grid[0]} is not on the {freq!r} grid starting at "
            f"{frame.index[0]}; fix it or set data.freq"
        )
    missing = grid.difference(frame.index)
    if fill == "error":
        if len(missing):
            before = " (just before this row)" if where else ""
            raise DataError(
                f"{locate(missing[0])}: {len(missing)} timestamp(s) missing at frequency {freq!r}, the first "
                f"{missing[0]}{before}; "
                "fill them with data.fill=interpolate|ffill|zero, or set data.freq"
            )
        nan_rows, nan_cols = np.nonzero(frame.isna().to_numpy())
        if len(nan_rows):  # only long files get here: a series without a row at a timestamp others have
            raise DataError(
                f"{path}: series {frame.columns[nan_cols[0]]!r} has no row at {frame.index[nan_rows[0]]}; "
                "add it, or fill missing values with data.fill=interpolate|ffill|zero"
            )
        return frame
    frame = frame.reindex(grid)
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise DataError(f"{path}: column {empty[0]!r} has no values at all")
    check_fill_fractions(frame, fill, path, max_fraction)
    if fill == "interpolate":
        return frame.interpolate(method="time", limit_direction="both")
    if fill == "ffill":
        return frame.ffill().bfill()
    return frame.fillna(0.0)


def check_fill_fractions(grid_frame: pd.DataFrame, fill: str, path: str, max_fraction: float) -> None:
    """Log the values `fill` makes up per series; refuse a series with a larger share than `max_fraction`."""
    if not 0 <= max_fraction <= 1:
        raise DataError(f"data.max_fill_fraction={max_fraction!r}: give a fraction in [0, 1]")
    missing = grid_frame.isna().sum()
    missing = missing[missing > 0].sort_values(ascending=False, kind="stable")
    if missing.empty:
        return
    total = len(grid_frame)
    log.info(
        "%s: data.fill=%s filled %s",
        path,
        fill,
        ", ".join(f"{int(n)} of {total} values of series {str(name)!r}" for name, n in missing.items()),
    )
    name, count = str(missing.index[0]), int(missing.iloc[0])
    if count > max_fraction * total:
        raise DataError(
            f"{path}: series {name!r} would be {count} of {total} values filled by data.fill={fill} "
            f"({count / total:.0%}, above data.max_fill_fraction={max_fraction:g}); give it more rows, leave it "
            "out with data.columns=[...], or allow it with data.max_fill_fraction=1"
        )


def load_series(path: str, delimiter: str | None = None, decimal: str | None = ".", **settings: Any):
    """Read, validate and regularise a file -> (frame on a regular DatetimeIndex, pandas frequency alias).

    `delimiter` (None: detected) and `decimal` shape how a CSV is read; the other settings are
    `series_from_table`'s: `target` (a column, or a series of a long file) must exist, `columns`
    default to all, `max_fill_fraction` bounds the share of a series that `fill` may make up.
    """
    raw, parquet = read_file(path, delimiter, decimal)
    return series_from_table(raw, path, parquet, **settings)


def series_from_table(
    raw: pd.DataFrame,
    path: str,
    typed: bool,
    date_col: str = "date",
    columns: list[str] | None = None,
    layout: str = "auto",
    fill: str = "error",
    freq: str | None = None,
    id_col: str = "unique_id",
    ds_col: str = "ds",
    y_col: str = "y",
    target: str | None = None,
    max_fill_fraction: float = DEFAULT_MAX_FILL_FRACTION,
) -> tuple[pd.DataFrame, str]:
    """`load_series` of a table already read: `raw` as the file's columns, `path` the name errors use.

    typed: the values are numbers already (Parquet, a DataFrame), not text to parse.
    """
    if fill not in FILL_POLICIES:
        raise DataError(f"data.fill={fill!r}; choose one of {', '.join(FILL_POLICIES)}")
    if layout not in ("auto", "wide", "long"):
        raise DataError(f"data.layout={layout!r}; choose auto, wide or long")
    if raw.empty:
        raise DataError(f"{path}: the file has no rows")
    is_long = layout == "long" or (layout == "auto" and {id_col, ds_col, y_col} <= set(raw.columns))
    if is_long:
        missing = [c for c in (id_col, ds_col, y_col) if c not in raw.columns]
        if missing:
            raise DataError(
                f"{path}: long layout needs columns {id_col!r}, {ds_col!r}, {y_col!r}; {missing[0]!r} is absent"
            )
        available = sorted(set(raw[id_col].astype(str)))
    else:
        available = [str(c) for c in raw.columns if c != date_col]
    if target is not None and target not in available:
        raise DataError(
            f"{path}: no target column {target!r} (columns: {', '.join(available[:20])}); set data.target=<column>"
        )
    if target is not None and columns is not None and target not in columns:
        raise DataError(f"{path}: data.target={target!r} is not among data.columns={list(columns)}; add it there")
    if is_long:
        frame = long_to_wide(raw, path, id_col, ds_col, y_col, typed, columns, fill)
        where = None
    else:
        frame = wide_frame(raw, path, date_col, columns, typed, fill)
        where = lambda position: _where(path, position, typed)  # wide frame rows are the file rows
    freq = freq or infer_frequency(frame.index, path)
    frame = fill_missing(frame, freq, fill, path, where, max_fill_fraction)
    frame.index.name = None
    return frame, freq
