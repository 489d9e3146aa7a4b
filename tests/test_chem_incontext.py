"""In-context generation: a model trained on families of molecules continues a prompt with its family."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.test_chem_train import TINY_LSTM, config
from zoo.training import run


def family_file(path: Path) -> Path:
    """Two families of small chains: amines (N) and ethers/alcohols (O); each molecule names its family."""
    rows = ["smiles,family"]
    for n in range(1, 11):
        for m in range(0, 4):
            for branch in ("", "C(C)"):
                rows += [f"{'C' * n}{branch}N{'C' * m},amine", f"{'C' * n}{branch}O{'C' * m},oxygen"]
    path.write_text("\n".join(rows) + "\n")
    return path


def amine_fraction(result: dict) -> tuple[float, int]:
    """(fraction of valid samples holding nitrogen, number of valid samples) of a `zoo chem sample` run."""
    with open(result["predictions"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    valid = [r["canonical_smiles"] for r in rows if r["valid"] == "1"]
    return (sum("N" in s for s in valid) / len(valid) if valid else float("nan")), len(valid)


def test_in_context_prompt_steers_generation(tmp_path):
    data = family_file(tmp_path / "families.csv")
    common = [
        *TINY_LSTM,
        f"data.path={data}",
        "data.group_column=family",
        "data.context_size=4",
        "data.batch_size=16",
        "data.val_fraction=0.1",
        "data.test_fraction=0.1",
    ]
    trained = run(
        config(
            "train", tmp_path / "t", *common, "trainer.max_epochs=40", "task.eval_samples=0", "task.optimizer.lr=5e-3"
        )
    )
    prompts = {"unprompted": None, "amine": "[CCCNC,CCNCC,CCCCN]", "oxygen": "[CCCOC,CCOCC,CCCCO]"}
    fractions = {}
    for name, prompt in prompts.items():
        result = run(
            config(
                "sample",
                tmp_path / name,
                *common,
                f"ckpt_path={trained['best_checkpoint']}",
                "data.num_samples=40",
                *([f"data.prompt={prompt}"] if prompt else []),
            )
        )
        fractions[name], valid = amine_fraction(result)
        assert valid >= 20, (name, valid)
    # Half the training molecules are amines, and unprompted the model writes both families; the prompt moves
    # the share of amines far from that baseline in the direction of its own family.
    base = fractions["unprompted"]
    assert 0.2 < base < 0.8, fractions
    assert fractions["amine"] > max(0.8, base + 0.3) and fractions["oxygen"] < min(0.2, base - 0.3), fractions
