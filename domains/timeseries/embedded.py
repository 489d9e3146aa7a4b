"""Real series that ship inside statsmodels, so `zoo timeseries train` runs with no download.

- `co2` (the default): weekly atmospheric CO2 at Mauna Loa, ppm, 1958-03-29 to
  2001-12-29, 2,284 weeks (statsmodels `datasets.co2`, from the Scripps CO2
  program). 59 weeks are missing in the source; this loader fills them by linear
  interpolation in time (the only place the product fills values without a flag).
- `sunspots`: yearly mean sunspot numbers 1700-2008 (309 years).
- `macrodata`: quarterly US macro series 1959Q1-2009Q3 (203 quarters, 12 columns,
  e.g. `realgdp`, `cpi`, `unemp`).

Use one with `data.path=statsmodels:<name>`.
"""

from __future__ import annotations

import pandas as pd

from zoo.errors import DataError

PREFIX = "statsmodels:"
EMBEDDED = ("co2", "sunspots", "macrodata")


def is_embedded(path: str) -> bool:
    return str(path).startswith(PREFIX)


def load_embedded(path: str) -> tuple[pd.DataFrame, str]:
    """(frame on a regular DatetimeIndex, pandas frequency alias) of `statsmodels:<name>`."""
    from statsmodels import datasets

    name = str(path)[len(PREFIX) :]
    if name == "co2":
        frame = datasets.co2.load_pandas().data.astype("float64")
        return frame.interpolate(method="time", limit_direction="both"), "W-SAT"
    if name == "sunspots":
        raw = datasets.sunspots.load_pandas().data
        index = pd.DatetimeIndex(pd.to_datetime(raw["YEAR"].astype(int).astype(str), format="%Y"))
        return pd.DataFrame({"sunactivity": raw["SUNACTIVITY"].to_numpy(float)}, index=index), "YS"
    if name == "macrodata":
        raw = datasets.macrodata.load_pandas().data
        index = pd.PeriodIndex.from_fields(
            year=raw["year"].astype(int), quarter=raw["quarter"].astype(int), freq="Q"
        ).to_timestamp()
        return raw.drop(columns=["year", "quarter"]).astype("float64").set_axis(index), "QS"
    raise DataError(
        f"unknown embedded series {path!r}; choose one of {', '.join(PREFIX + n for n in EMBEDDED)} or give "
        "data.path=<file.csv>"
    )
