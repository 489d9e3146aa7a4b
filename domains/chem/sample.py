"""`zoo chem sample`: draw molecules from a trained SMILES language model.

No Lightning loop: the model comes from `ckpt_path` (a chem `.ckpt`) or
`weights` (a folder from `zoo chem export`, `hf://...`), molecules are sampled
in batches (with `step()` for recurrent models) and written to a CSV (renamed
into place when complete), with `<stem>.metrics.json` (validity, uniqueness,
novelty against the data's training split, diversity, descriptor distances,
similarity to the prompt) and `<stem>.png`, a grid of the valid structures.
`data.prompt` (a molecule file or list of SMILES) makes it in-context generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from domains.chem.sampling import sample, sample_rows
from domains.chem.tasks import SmilesLMTask, check_training_split, write_sample_report
from domains.chem.tokenizer import SmilesTokenizer
from zoo.errors import ZooError
from zoo.io import write_csv_atomic
from zoo.training.loading import load_for_inference
from zoo.training.runs import run_folder, write_run_record


def load_language_model(cfg: DictConfig) -> tuple[torch.nn.Module, SmilesTokenizer, dict | None]:
    """The backbone, its tokenizer, and (from a training run) the training split it saw."""
    task, _ = load_for_inference(cfg)
    if not isinstance(task, SmilesLMTask):
        raise ZooError(f"`zoo chem sample` needs a SMILES language model; this source holds a {type(task).__name__}")
    return task.backbone, task.tokenizer, task.hparams.get("training_split")


def run(cfg: DictConfig) -> dict[str, Any]:
    torch.manual_seed(int(cfg.seed))
    model, tokenizer, training_split = load_language_model(cfg)
    device = cfg.get("device") or "auto"
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    model = model.to(device).eval()
    datamodule = instantiate(cfg.data, tokenizer=None, _convert_="all")
    prompt = datamodule.prompt
    check_training_split(training_split, datamodule)
    params = OmegaConf.to_container(cfg.task.sampling, resolve=True)
    samples = sample(
        model,
        tokenizer,
        int(cfg.data.num_samples),
        batch_size=int(cfg.data.sample_batch_size),
        seed=int(cfg.seed),
        prompt=prompt,
        **params,
    )
    out = run_folder(cfg)
    path = Path(cfg.get("output") or out / "samples.csv")
    write_csv_atomic(path, sample_rows(samples))
    metrics = write_sample_report(
        str(path), datamodule.train_smiles, datamodule.test_smiles, prompt, fcd=bool(cfg.get("fcd"))
    )
    # The keys of `predict`'s result (predictions, rows), so tools read both verbs alike.
    result = {"mode": "sample", "output_dir": str(out), "predictions": str(path), "rows": len(samples)}
    if path.with_suffix(".png").is_file():
        result["grid"] = str(path.with_suffix(".png"))
    result["metrics"] = {
        k: v for k, v in metrics.items() if v == v and k != "samples"
    }  # NaN (undefined) metrics left out
    write_run_record(out, cfg, result)
    return result
