"""`zoo genomics embed`: backbone features of sequences to `.npy` or Parquet.

Records (the user's file, or the embedded data) give one pooled vector each
(`embed.pool`: mean, max, last; `none` keeps every base, Parquet only); a region
(`embed.region=chrom:start-end` of a FASTA) is embedded in one pass, one vector
per base, however long the model allows (a 1 Mb region with `hyenadna_large_1m`).
The model comes from `ckpt_path` (a training checkpoint), `weights` (a folder,
`hf://` address or registry tag) or, with neither, freshly initialised from
`model` (useful only for timing, and said so in the log).
"""

from __future__ import annotations

import logging
import re
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from domains.genomics.embedded import MotifTask
from domains.genomics.fasta import open_genome
from domains.genomics.records import apply_length_policy
from domains.genomics.sources import load_examples
from domains.genomics.tokenizer import CharTokenizer, DNATokenizer, tokenizer_from_config
from zoo import create_model, from_pretrained
from zoo.errors import DataError, ZooError
from zoo.io import atomic_path, write_text_atomic
from zoo.layers.heads import pool_sequence
from zoo.training.loading import open_checked
from zoo.training.runs import resolve_checkpoint, run_folder, write_run_record

log = logging.getLogger(__name__)
POOLS = ("mean", "max", "last", "none")


def load_backbone(cfg: DictConfig, tokenizer: CharTokenizer) -> tuple[torch.nn.Module, CharTokenizer]:
    """The backbone `ckpt_path` (`last` included) or `weights` names, with the tokenizer it was trained with."""
    source = resolve_checkpoint(cfg) or cfg.get("weights")
    if source:
        weights = open_checked(source, cfg)  # another domain's model: one line, not a size mismatch
        saved = weights.data_contract.get("tokenizer")
        return from_pretrained(weights), tokenizer_from_config(saved) if saved else tokenizer
    log.warning(
        "embed: no ckpt_path or weights, so the model is randomly initialised: these features only time the model"
    )
    kwargs = OmegaConf.to_container(cfg.model.kwargs, resolve=True) or {}
    return create_model(cfg.model.name, **{"vocab_size": len(tokenizer), **kwargs}), tokenizer


def parse_region(region: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"(.+):([\d,_]+)-([\d,_]+)", region.strip())
    if not match:
        raise ZooError(f"embed.region={region!r}; write chrom:start-end (0-based, end exclusive), e.g. chr1:0-1000000")
    chrom, start, end = (
        match.group(1),
        int(re.sub(r"[,_]", "", match.group(2))),
        int(re.sub(r"[,_]", "", match.group(3))),
    )
    if end <= start:
        raise ZooError(f"embed.region={region!r}: end must be larger than start")
    return chrom, start, end


@torch.no_grad()
def embed_region(
    model: torch.nn.Module, tokenizer: CharTokenizer, seq: str, device: torch.device, where: str = ""
) -> np.ndarray:
    """(L, D) features of one sequence in a single forward pass (no special tokens)."""
    ids = torch.as_tensor(tokenizer.encode(seq, where=where, special_tokens=False))[None].to(device)
    return model.forward_features(ids).float()[0].cpu().numpy()


@torch.no_grad()
def embed_records(model, tokenizer, examples, pool: str, batch_size: int, device: torch.device) -> list[np.ndarray]:
    out = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        ids, mask = tokenizer.pad([tokenizer.encode(e.seq, where=f"record {e.id!r}") for e in chunk])
        ids, mask = ids.to(device), mask.to(device)
        features = model.forward_features(ids, mask).float()
        if pool == "none":
            out.extend(f[m].cpu().numpy() for f, m in zip(features, mask))
        else:  # an RC-equivariant model pools both strands into one strand-invariant vector
            pooled = (
                model.pool_features(features, mask, pool)
                if hasattr(model, "pool_features")
                else pool_sequence(features, mask, pool)
            )
            out.extend(pooled.cpu().numpy())
    return out


def write_embeddings(ids: list[str], vectors: list[np.ndarray] | np.ndarray, target: Path, fmt: str) -> list[Path]:
    """Atomically: `<target>.npy` + `<target>.ids.txt`, or `<target>.parquet`; one vector (or array) per id."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = target.with_suffix(".parquet")
        table = pa.table({"id": ids, "embedding": [v.tolist() for v in vectors]})
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return [path]
    if fmt != "npy":
        raise ZooError(f"embed.format={fmt!r}; choose npy or parquet")
    if not isinstance(vectors, np.ndarray) and len({v.shape for v in vectors}) > 1:
        raise ZooError(
            "per-base embeddings of records of different lengths do not fit one .npy; use embed.format=parquet"
        )
    path, names = target.with_suffix(".npy"), target.with_suffix(".ids.txt")
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, vectors if isinstance(vectors, np.ndarray) else np.stack(vectors))
    write_text_atomic(names, "".join(f"{i}\n" for i in ids))
    return [path, names]


def _examples(cfg: DictConfig, tokenizer: CharTokenizer):
    data = cfg.data
    path = data.get("predict_path") or data.get("path")
    if not path:
        splits = MotifTask(**OmegaConf.to_container(data.get("embedded") or {}, resolve=True)).splits()
        return [e for part in splits.values() for e in part], "embedded JASPAR motifs"
    keys = ("labels", "reference", "sequence_column", "id_column", "delimiter", "decimal")
    examples = load_examples(path, tokenizer, require_labels=False, **{k: data.get(k) for k in keys})
    return apply_length_policy(
        examples, data.get("max_length"), data.get("on_too_long", "error"), data.get("stride"), str(path)
    ), str(path)


def run(cfg: DictConfig) -> dict[str, Any]:
    options = cfg.embed
    if options.pool not in POOLS:
        raise ZooError(f"embed.pool={options.pool!r}; choose one of {', '.join(POOLS)}")
    tokenizer = DNATokenizer(on_ambiguous=cfg.data.get("on_ambiguous", "n"))
    model, tokenizer = load_backbone(cfg, tokenizer)
    device = torch.device(
        "cuda"
        if options.device == "auto" and torch.cuda.is_available()
        else ("cpu" if options.device == "auto" else options.device)
    )
    model = model.to(device).eval()
    out = run_folder(cfg)
    target = Path(cfg.get("output") or out / "embeddings").with_suffix("")
    start = time.perf_counter()
    if options.region:
        if not cfg.data.get("path"):
            raise DataError("embed.region needs a genome: add data.path=<genome.fa>")
        chrom, begin, end = parse_region(options.region)
        seq = open_genome(cfg.data.path).fetch(chrom, begin, end)
        if len(seq) < end - begin:
            raise DataError(f"{cfg.data.path}: region {options.region} runs past the end of {chrom}")
        features = embed_region(model, tokenizer, seq, device, options.region)
        files = write_embeddings([f"{chrom}:{begin + i}" for i in range(len(seq))], features, target, options.format)
        count = 1
    else:
        examples, source = _examples(cfg, tokenizer)
        vectors = embed_records(model, tokenizer, examples, options.pool, int(options.batch_size), device)
        files = write_embeddings([e.id for e in examples], vectors, target, options.format)
        count = len(examples)
    seconds = time.perf_counter() - start
    result = {
        "mode": "embed",
        "output_dir": str(out),
        "files": [str(f) for f in files],
        "records": count,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    write_run_record(out, cfg, result)
    return result
