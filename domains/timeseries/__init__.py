"""Time series: forecasting (Informer, AR-Net, DLinear/NLinear, any sequence backbone) and audio classification.

Data: a wide CSV/Parquet (date column + numeric columns) or a long one (unique_id, ds, y);
features S / M / MS with data.target; missing values are errors unless data.fill is set.
Default data: weekly Mauna Loa CO2 shipped with statsmodels. Baselines (repeat_last,
seasonal_naive, classic_ar) are registered closed-form models: `train` fits them without
gradient steps and every other verb treats them like trained ones. Metrics: MSE, MAE, RMSE,
MAPE, sMAPE, MASE on the standardised and the original scale. `predict` writes the
forecast CSV and a PNG of history + forecast.
"""

EXAMPLES = [
    "zoo timeseries train",
    "zoo timeseries train data.path=my.csv data.target=OT model=informer horizon=24",
    "zoo timeseries train experiment=informer_ett data.path=ETTh1.csv seq_len=96 label_len=48 horizon=48",
    "zoo timeseries train model=dlinear data.features=M data.path=my.parquet",
    "zoo timeseries train model=seasonal_naive",
    "zoo timeseries train model=arnet task.sparsity=0.1 task.instance_norm=false seq_len=104 horizon=1",
    "zoo timeseries finetune weights=runs/timeseries/train/<run>/checkpoints/best.ckpt data.path=my.csv",
    "zoo timeseries predict ckpt_path=last data.path=my.csv data.target=OT",
    "zoo timeseries eval ckpt_path=runs/timeseries/train/<run>/checkpoints/best.ckpt",
    "zoo timeseries train experiment=audio data.root=my_wavs/ model=s5",
]

# `make demo`: the default small Informer, 2 epochs on the embedded weekly CO2 series, then a
# forecast CSV + PNG of the 24 weeks after 2001 (17 s + 6 s wall on the 2-core dev machine,
# imports included). The demo runner adds ckpt_path=<trained checkpoint> to predict itself.
DEMO = {
    "train": ["trainer.max_epochs=2", "trainer.enable_progress_bar=false"],
    "predict": ["trainer.enable_progress_bar=false"],
    "metric": "test/mse",
}
