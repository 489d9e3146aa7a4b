"""Prediction output that streams to disk and never leaves a half file.

Rows (dicts, record id first) are appended to `<output>.partial` batch by
batch, so memory stays flat on large inputs; the file is renamed to its final
name only when prediction completes. A killed run leaves only `.partial`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import BasePredictionWriter


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
