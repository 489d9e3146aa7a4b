"""Calendar features of timestamps, by sampling frequency (as Informer's `utils/timefeatures.py`).

`time_features` gives the `timeF` encoding: each feature scaled to [-0.5, 0.5], chosen
by the frequency (hourly data: hour of day, day of week, day of month, day of year).
`calendar_fields` gives the integer `[month, day, weekday, hour, minute // 15]` columns
that Informer's `fixed` and `learned` embeddings look up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.tseries import offsets
from pandas.tseries.frequencies import to_offset

from zoo.errors import DataError


def _second_of_minute(i: pd.DatetimeIndex) -> np.ndarray:
    return i.second / 59.0 - 0.5


def _minute_of_hour(i: pd.DatetimeIndex) -> np.ndarray:
    return i.minute / 59.0 - 0.5


def _hour_of_day(i: pd.DatetimeIndex) -> np.ndarray:
    return i.hour / 23.0 - 0.5


def _day_of_week(i: pd.DatetimeIndex) -> np.ndarray:
    return i.day_of_week / 6.0 - 0.5


def _day_of_month(i: pd.DatetimeIndex) -> np.ndarray:
    return (i.day - 1) / 30.0 - 0.5


def _day_of_year(i: pd.DatetimeIndex) -> np.ndarray:
    return (i.day_of_year - 1) / 365.0 - 0.5


def _month_of_year(i: pd.DatetimeIndex) -> np.ndarray:
    return (i.month - 1) / 11.0 - 0.5


def _week_of_year(i: pd.DatetimeIndex) -> np.ndarray:
    return (i.isocalendar().week.to_numpy(dtype=float) - 1) / 52.0 - 0.5


_DAILY = [_day_of_week, _day_of_month, _day_of_year]
#: frequency code -> timeF features; the code is also Informer's `freq` argument.
FEATURES = {
    "a": [_month_of_year],  # yearly: constant, kept so the embedding has an input
    "q": [_month_of_year],
    "m": [_month_of_year],
    "w": [_day_of_month, _week_of_year],
    "d": _DAILY,
    "b": _DAILY,
    "h": [_hour_of_day, *_DAILY],
    "t": [_minute_of_hour, _hour_of_day, *_DAILY],
    "s": [_second_of_minute, _minute_of_hour, _hour_of_day, *_DAILY],
}

_CODES = [
    (offsets.YearEnd, "a"),
    (offsets.YearBegin, "a"),
    (offsets.QuarterEnd, "q"),
    (offsets.QuarterBegin, "q"),
    (offsets.MonthEnd, "m"),
    (offsets.MonthBegin, "m"),
    (offsets.Week, "w"),
    (offsets.BusinessDay, "b"),
    (offsets.Day, "d"),
    (offsets.Hour, "h"),
    (offsets.Minute, "t"),
    (offsets.Second, "s"),
]
#: season length (steps) per code for seasonal naive and MASE; sub-daily codes use steps per day.
_SEASONS = {"a": 1, "q": 4, "m": 12, "w": 52, "d": 7, "b": 5}


def frequency_code(freq: str) -> str:
    """Pandas alias ('h', '15min', 'W-SAT', 'MS', ...) -> one-letter code of FEATURES."""
    try:
        offset = to_offset(freq)
    except ValueError as err:
        raise DataError(f"unknown frequency {freq!r}: give a pandas alias such as h, 15min, D, W, MS, QS, YS") from err
    for kind, code in _CODES:
        if isinstance(offset, kind):
            return code
    raise DataError(
        f"frequency {freq!r} is not supported; use seconds, minutes, hours, days, business days, weeks, months, "
        "quarters or years"
    )


def season_length(freq: str) -> int:
    """A natural seasonal period: one day for sub-daily data, a week of days, a year of weeks/months/quarters."""
    code = frequency_code(freq)
    if code in _SEASONS:
        return _SEASONS[code]
    step = pd.Timedelta(to_offset(freq))
    return max(1, int(pd.Timedelta("1D") // step))


def time_features(index: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """`(len(index), n)` timeF features in [-0.5, 0.5]."""
    return np.stack([np.asarray(f(index), dtype=np.float32) for f in FEATURES[frequency_code(freq)]], axis=1)


def calendar_fields(index: pd.DatetimeIndex) -> np.ndarray:
    """`(len(index), 5)` integers: month, day, weekday, hour, minute // 15."""
    return np.stack([index.month, index.day, index.day_of_week, index.hour, index.minute // 15], axis=1).astype(
        np.int64
    )
