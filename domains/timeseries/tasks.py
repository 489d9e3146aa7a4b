"""Forecasting with any registered model: Informer, AR-Net, DLinear/NLinear, a baseline or a sequence backbone.

How a model is driven is what its class declares (`forecaster`, read with `zoo.registry.model_class`):
- `encoder_decoder` (Informer): the official call, decoder fed `label_len` known steps + zeros.
- `window` (DLinear, NLinear, the baselines): the window maps straight to the horizon.
- `autoregressive` (AR-Net): each forecast channel is its own univariate series (channel-independent).
- None (any other backbone): `forward_features` over the window, pooled (`head_pool`, default the last
  step) into a linear head of width horizon x channels, i.e. the backbone's own classifier head.
A class with `closed_form = True` (repeat_last, seasonal_naive, classic_ar) is fitted by
`fit_closed_form` on the training rows instead of gradient steps; one with `takes_season = True`
(seasonal_naive) gets the data's seasonal period as `season` unless the config sets one.
Inputs are standardised with the training split's statistics (stored in the checkpoint);
the loss is on that scale, as in the Informer paper. `instance_norm` additionally
standardises each window by its own mean and std and restores them on the output
(RevIN without the affine part: Kim et al., "Reversible Instance Normalization for
Accurate Time-Series Forecasting against Distribution Shift", ICLR 2022), which
lets any model follow a trend beyond the training range; closed-form models skip it (they
are fitted on the training rows as a whole). Val/test log MSE, MAE, RMSE, MAPE,
sMAPE and MASE on the standardised scale (`test/mse`, ...) and on the original one
(`test/original/mse`, ...).

The task's `data_contract()` (channels, features, frequency, window lengths) is saved with
the model; the datamodule checks a restored model's contract against its file.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR

from domains.timeseries.data import TimeSeriesDataModule
from domains.timeseries.metrics import ForecastErrors
from domains.timeseries.tables import series_from_table
from zoo.errors import ZooError
from zoo.models.arnet import sparsity_lambda
from zoo.registry import model_class
from zoo.training import BaseTask

log = logging.getLogger(__name__)

LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.smooth_l1_loss}
#: the `forecaster` kinds this task drives; a class declaring None gets the generic head ("sequence").
KINDS = ("encoder_decoder", "window", "autoregressive")


def halving_schedule(optimizer: torch.optim.Optimizer) -> LambdaLR:
    """Informer's `lradj=type1` (per epoch): lr for epochs 1, 2, 3, 4... is lr0 x 1, 1, 1/2, 1/4..."""
    return LambdaLR(optimizer, lambda epoch: 0.5 ** max(0, epoch - 1))


def forecaster_kind(model: str) -> str:
    """How the task drives `model`: its class's declared `forecaster`, or "sequence" (the generic head)."""
    kind = getattr(model_class(model), "forecaster", None)
    if kind is None:
        return "sequence"
    if kind not in KINDS:
        raise ZooError(
            f"model {model!r} declares forecaster={kind!r}; the time-series task drives {', '.join(KINDS)} "
            "or None (a sequence backbone under a linear head)"
        )
    return kind


def structural_kwargs(
    model: str,
    user: dict,
    seq_len: int,
    label_len: int,
    horizon: int,
    n_in: int,
    c_out: int,
    freq: str,
    head_pool: str,
    season: int,
) -> dict:
    """The model kwargs the data decides (they override the config's)."""
    kind = forecaster_kind(model)
    if kind == "encoder_decoder":
        return dict(in_features=n_in, num_classes=c_out, label_len=label_len, pred_len=horizon, freq=freq)
    if kind == "window":
        kwargs = dict(in_features=n_in, seq_len=seq_len, pred_len=horizon)
        if getattr(model_class(model), "takes_season", False) and user.get("season") is None:
            kwargs["season"] = season  # the data's period, e.g. 24 for hourly rows
        return kwargs
    if kind == "autoregressive":
        order = user.get("ar_order", seq_len)
        if order > seq_len:
            raise ZooError(
                f"AR-Net ar_order={order} is longer than the input window seq_len={seq_len}; raise seq_len or lower "
                "model.kwargs.ar_order"
            )
        return dict(in_features=1, ar_order=order, n_forecasts=horizon)
    return dict(in_features=n_in, num_classes=horizon * c_out, global_pool=head_pool)


class ForecastTask(BaseTask):
    def __init__(
        self,
        model: str = "informer_tiny",
        model_kwargs: dict | None = None,
        seq_len: int = 96,
        label_len: int = 48,
        horizon: int = 24,
        features: str = "S",
        channels: list[str] | None = None,
        freq: str = "h",
        season: int = 1,
        scaler_mean: list[float] | None = None,
        scaler_std: list[float] | None = None,
        mase_scale: list[float] | None = None,
        loss: str = "mse",
        head_pool: str = "last",
        instance_norm: bool = False,
        sparsity: float | None = None,
        sparsity_c1: float = 2.0,
        sparsity_c2: float = 2.0,
        noise_std: float = 1.0,
        **kwargs,
    ):
        channels = list(channels or ["y"])
        n_in = len(channels)
        c_out = n_in if features == "M" else 1
        user = dict(model_kwargs or {})
        model_kwargs = {
            **user,
            **structural_kwargs(model, user, seq_len, label_len, horizon, n_in, c_out, freq, head_pool, season),
        }
        super().__init__(model=model, model_kwargs=model_kwargs, **kwargs)
        if loss not in LOSSES:
            raise ZooError(f"task.loss={loss!r}; choose one of {', '.join(LOSSES)}")
        self.kind = forecaster_kind(model)
        self.closed_form = bool(getattr(model_class(model), "closed_form", False))
        if instance_norm and self.closed_form:
            log.info("%s is fitted on the training rows as a whole: task.instance_norm does not apply", model)
        self.instance_norm = instance_norm and not self.closed_form
        self.channels, self.c_out = channels, c_out
        self.register_buffer("mean", torch.tensor(scaler_mean or [0.0] * n_in, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(scaler_std or [1.0] * n_in, dtype=torch.float32), persistent=False)
        # MASE's scale is in original units; on the standardised scale it is divided by the std.
        scale = list(mase_scale or [1.0] * n_in)[-c_out:]
        scaled = [s / d for s, d in zip(scale, self.std.tolist()[-c_out:])]
        self.val_errors, self.test_errors = ForecastErrors(scaled), ForecastErrors(scaled)
        self.test_errors_original = ForecastErrors(scale)

    def data_contract(self) -> dict[str, Any]:
        """What the data must give this model: its channels in order (target last), frequency and windows."""
        hp = self.hparams
        return {
            "channels": list(self.channels),
            "features": hp.features,
            "freq": hp.freq,
            "seq_len": hp.seq_len,
            "label_len": hp.label_len,
            "horizon": hp.horizon,
        }

    def fit_closed_form(self, datamodule) -> None:
        """Fit a closed-form model (`fit(rows)`) on the training rows, standardised as this task standardises.

        Only the forecast channels are fitted (for `MS` the target). The naive baselines are born
        fitted; a model restored from weights keeps what it was fitted to.
        """
        if bool(getattr(self.backbone, "fitted", False)):
            return
        if datamodule.train_set is None:  # `predict` cuts no splits, but the model is fitted on the training rows
            datamodule.make_splits()
        rows = torch.as_tensor(datamodule.train_rows, dtype=torch.float64)
        scaled = (rows - self.mean.double().cpu()) / self.std.double().cpu()
        self.backbone.fit(scaled[:, -self.c_out :])

    # ------------------------------------------------------------------ forecasting

    def forecast(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Standardised forecast `(B, horizon, c_out)`."""
        hp = self.hparams
        x = (batch["x"] - self.mean) / self.std
        if x.shape[1] != hp.seq_len or x.shape[2] != len(self.mean):
            raise ZooError(
                f"this model was trained on windows of seq_len={hp.seq_len} with {len(self.mean)} channels "
                f"({', '.join(self.channels)}); got {x.shape[1]} steps of {x.shape[2]}: pass seq_len={hp.seq_len} "
                "and the same columns"
            )
        loc, spread = torch.zeros_like(x[:, :1]), torch.ones_like(x[:, :1])
        if self.instance_norm:
            loc, spread = x.mean(1, keepdim=True), x.std(1, keepdim=True, unbiased=False) + 1e-5
        x = (x - loc) / spread
        pred = self.run_model(x, batch, loc, spread)
        return pred * spread[..., -self.c_out :] + loc[..., -self.c_out :]

    def run_model(
        self, x: torch.Tensor, batch: dict[str, torch.Tensor], loc: torch.Tensor, spread: torch.Tensor
    ) -> torch.Tensor:
        hp = self.hparams
        if self.kind == "encoder_decoder":
            known = ((batch["y"][:, : hp.label_len] - self.mean) / self.std - loc) / spread
            dec = torch.cat([known, known.new_zeros(known.shape[0], hp.horizon, known.shape[2])], dim=1)
            timef = getattr(self.backbone, "embed", "timeF") == "timeF"
            x_mark, y_mark = (batch["x_mark"], batch["y_mark"]) if timef else (batch["x_cal"], batch["y_cal"])
            return self.backbone.forecast(x, x_mark, dec, y_mark)
        if self.kind == "window":
            return self.backbone.forecast(x)[..., -self.c_out :]
        if self.kind == "autoregressive":
            series = x[..., -self.c_out :]
            batch_size, length, channels = series.shape
            flat = series.transpose(1, 2).reshape(batch_size * channels, length, 1)
            return self.backbone.forecast(flat).view(batch_size, channels, -1).transpose(1, 2)
        return self.backbone(x).view(x.shape[0], hp.horizon, self.c_out)

    def target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw (original-scale) targets `(B, horizon, c_out)`."""
        return batch["y"][:, -self.hparams.horizon :, -self.c_out :]

    def to_original(self, scaled: torch.Tensor) -> torch.Tensor:
        return scaled * self.std[-self.c_out :] + self.mean[-self.c_out :]

    # ------------------------------------------------------------------ steps

    def shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        pred = self.forecast(batch)
        raw = self.target(batch)
        target = (raw - self.mean[-self.c_out :]) / self.std[-self.c_out :]
        loss = LOSSES[self.hparams.loss](pred, target)
        if stage == "train" and self.kind == "autoregressive" and self.hparams.sparsity is not None:
            progress = self.global_step / max(1, self.trainer.estimated_stepping_batches)
            lam = sparsity_lambda(progress, self.hparams.sparsity, self.hparams.noise_std)
            loss = loss + lam * self.backbone.regularizer(self.hparams.sparsity_c1, self.hparams.sparsity_c2)
            self.log("train/lambda", lam)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=pred.shape[0])
        if stage == "val":
            self.val_errors.update(pred.detach(), target)
        elif stage == "test":
            self.test_errors.update(pred.detach(), target)
            self.test_errors_original.update(self.to_original(pred.detach()), raw)
        return loss

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v.float() for k, v in self.val_errors.compute().items()})
        self.val_errors.reset()

    def on_test_epoch_end(self) -> None:
        self.log_dict({f"test/{k}": v.float() for k, v in self.test_errors.compute().items()})
        self.log_dict({f"test/original/{k}": v.float() for k, v in self.test_errors_original.compute().items()})
        self.test_errors.reset()
        self.test_errors_original.reset()

    # ------------------------------------------------------------------ outputs

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> list[dict]:
        from domains.timeseries.plotting import forecast_rows

        names = self.channels[-self.c_out :]
        return forecast_rows(self.to_original(self.forecast(batch)), batch["future_ns"], names)

    @torch.no_grad()
    def predict(self, data: str | os.PathLike | pd.DataFrame | None = None) -> list[dict]:
        """The forecast rows `zoo timeseries predict` writes for this series (`zoo.load_pipeline`): one row
        per step after its last timestamp (`ds`, `horizon`, one column per forecast channel, original units).

        data: a file (`data.path=...` of the CLI), the same table as a DataFrame (a date column, or the
        long `unique_id, ds, y` layout), or a DataFrame on a DatetimeIndex; None: the series the model was
        trained on. It is read with the recorded data settings (target, features, columns, frequency, fill)
        and cut into the recorded windows, and the recorded training scaling is applied.
        """
        settings = {k: v for k, v in dict(self.data_settings or {}).items() if k != "_target_"}
        if isinstance(data, pd.DataFrame):
            datamodule = GivenFrame(data, **{**settings, "path": "DataFrame"})
        else:
            datamodule = TimeSeriesDataModule(**{**settings, **({"path": str(data)} if data is not None else {})})
        datamodule.setup("predict")
        datamodule.accept_contract(self.data_contract())
        if self.closed_form:
            self.fit_closed_form(datamodule)  # as the runner does: a no-op for a fitted (restored) model
        rows = []
        for batch in datamodule.predict_dataloader():
            batch = {k: v.to(self.device) for k, v in batch.items()}
            rows += self.predict_step(batch, 0)
        return rows

    def on_predictions_written(self, path: str, datamodule) -> None:
        from domains.timeseries.plotting import plot_forecast_file

        plot_forecast_file(path, datamodule.frame, season=self.hparams.season)


class GivenFrame(TimeSeriesDataModule):
    """A series given as a DataFrame instead of a file, read and checked as `load_series` reads a file."""

    def __init__(self, frame: pd.DataFrame, **settings: Any):
        super().__init__(**settings)
        self.given = frame

    def load_frame(self) -> tuple[pd.DataFrame, str]:
        raw = self.given
        if isinstance(raw.index, pd.DatetimeIndex):
            raw = raw.rename_axis(self.read_kwargs["date_col"]).reset_index()
        columns = self.columns or ([self.target] if self.features == "S" and self.target else None)
        settings = {k: v for k, v in self.read_kwargs.items() if k not in ("delimiter", "decimal")}
        return series_from_table(raw, self.path, True, columns=columns, target=self.target, **settings)
