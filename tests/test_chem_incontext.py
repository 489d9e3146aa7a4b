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


def test_in_context_prompt_steers_generation(tmp_path):
    data = family_file(tmp_path / "families.csv")
    common = [*TINY_LSTM, f"data.path={data}", "data.group_column=family", "data.context_size=4", "data.batch_size=16",
              "data.val_fraction=0.1", "data.test_fraction=0.1"]
    trained = run(config("train", tmp_path / "t", *common, "trainer.max_epochs=40", "task.eval_samples=0", "task.optimizer.lr=5e-3"))
    fractions = {}
    for family, prompt in {"amine": "[CCCNC,CCNCC,CCCCN]", "oxygen": "[CCCOC,CCOCC,CCCCO]"}.items():
        result = run(config("sample", tmp_path / family, *common, f"ckpt_path={trained['best_checkpoint']}",
                            f"data.prompt={prompt}", "data.num_samples=40", f"seed={len(family)}"))
        rows = list(csv.DictReader(open(result["samples"])))
        valid = [r["canonical_smiles"] for r in rows if r["valid"] == "1"]
        assert len(valid) >= 20, rows
        fractions[family] = sum("N" in s for s in valid) / len(valid)
    # Half the training molecules are amines: the prompt, not a learned bias, decides which family is written.
    assert fractions["amine"] > 0.8 and fractions["oxygen"] < 0.2, fractions
