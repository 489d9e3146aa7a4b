"""Files a run writes as it goes: predictions and the metrics log.

`StreamingCSVWriter`: prediction output that streams to disk and never leaves a half file.

Rows (dicts, record id first) are appended to `<output>.partial` batch by
batch, so memory stays flat on large inputs; the file is renamed to its final
name only when prediction completes. A killed run leaves only `.partial`.

`ResumableCSVLogger`: Lightning's CSV logger, continued (not restarted) by a resumed run. Lightning
writes `metrics.csv` after every logging call, so a run killed after its last checkpoint has rows
the resumed run will log again: `continue_before(step)` drops the rows of steps at or after the
checkpoint's global step (a validation row carries the step before it) before appending.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from zoo.io import atomic_path


class StreamingCSVWriter(BasePredictionWriter):
    def __init__(self, output: str | os.PathLike):
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.rows_written = 0
        self._handle = None
        self._writer: csv.DictWriter | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.partial, "w", newline="")  # noqa: SIM115  (kept open across predict batches)
        self._writer, self.rows_written = None, 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction: list[dict[str, Any]], batch_indices, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not prediction:
            return
        if self._writer is None:
            self._writer = csv.DictWriter(self._handle, fieldnames=list(prediction[0]))
            self._writer.writeheader()
        self._writer.writerows(prediction)
        self._handle.flush()
        self.rows_written += len(prediction)

    def on_predict_end(self, trainer, pl_module) -> None:
        self._handle.close()
        os.replace(self.partial, self.output)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.close()


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing `metrics.csv` is continued, not deleted."""

    def __init__(self, log_dir: str, keep_before: int | None = None):
        self.keep_before = keep_before
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as handle:  # a resumed run: keep its rows
            reader = csv.DictReader(handle)
            self.metrics_keys = sorted(reader.fieldnames or [])
            rows = list(reader)
        if self.keep_before is None:
            return
        kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < self.keep_before]
        if len(kept) < len(rows):  # rows the killed process logged after its checkpoint: logged again now
            with atomic_path(self.metrics_file_path) as tmp, open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=reader.fieldnames or [])
                writer.writeheader()
                writer.writerows(kept)


class ResumableCSVLogger(CSVLogger):
    """CSV metrics that a resumed run appends to, so a run killed and resumed keeps one metrics log."""

    keep_before: int | None = None

    def continue_before(self, step: int) -> None:
        """Resume the log at a checkpoint of this global step: rows of later steps go (call before fit)."""
        self.keep_before = int(step)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir, keep_before=self.keep_before)
        return self._experiment
