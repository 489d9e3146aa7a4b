"""Sampling: step() logits equal full-sequence logits, temperature/top-k/greedy, seeds, prompts, batches."""

from __future__ import annotations

import pytest
import torch

from domains.chem.sampling import (
    next_token_logits,
    next_token_step,
    prompt_ids,
    sample,
    sample_batch,
    sample_rows,
    sequence_logp,
)
from domains.chem.tokenizer import SmilesTokenizer
from zoo import create_model
from zoo.factory import language_model_kwargs

TOKENIZER = SmilesTokenizer.from_smiles(
    ["CCO", "c1ccccc1N", "CC(=O)Cl", "C[C@@H](Br)F", "C1CC%10CC1CCCCCCC%10", "[Na+].[Cl-]"]
)
# (registry name, kwargs): the LSTM baseline; Bio-xLSTM with an sLSTM block and a tied head; and the layout of
# `model=chem_xlstm` (mLSTM blocks only, separate LM head) at test size.
RECURRENT = {
    "lstm": ("test_lstm", {}),
    "xlstm_mixed": ("test_bio_xlstm", {}),
    "xlstm_chem": ("test_bio_xlstm", {"slstm_at": [], "tie_weights": False}),
}


def language_model(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **language_model_kwargs(name, {"vocab_size": len(TOKENIZER), **kwargs})).eval()


@pytest.mark.parametrize("name,kwargs", RECURRENT.values(), ids=RECURRENT)
def test_step_logits_equal_full_sequence_logits(name, kwargs):
    model = language_model(name, **kwargs)
    # 43 tokens: longer than two of test_bio_xlstm's 16-token mLSTM chunks, so the chunkwise carry is compared too.
    molecules = ["CCO", "C[C@@H](Br)F", "C1CC%10CC1CCCCCCC%10", "c1ccccc1N", "[Na+].[Cl-]"]
    ids = torch.tensor([TOKENIZER.encode_context(molecules), TOKENIZER.encode_context(molecules[::-1])])
    assert ids.shape[1] > 32
    with torch.no_grad():
        full = next_token_logits(model, ids)
        state = model.init_state(ids.shape[0])
        stepped = []
        for t in range(ids.shape[1]):
            logits, state = next_token_step(model, ids[:, t], state)
            stepped.append(logits)
    assert full.shape == (2, ids.shape[1], len(TOKENIZER))
    torch.testing.assert_close(torch.stack(stepped, 1), full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "name,kwargs", [*RECURRENT.values(), ("test_transformer", {})], ids=[*RECURRENT, "transformer"]
)
def test_sampled_log_likelihood_equals_full_forward(name, kwargs):
    # The sampler scores each token with the logits it sampled from (step() for recurrent models);
    # re-scoring the finished molecule with one parallel forward pass must give the same number.
    model = language_model(name, **kwargs)
    samples = sample(model, TOKENIZER, 12, batch_size=5, seed=3, max_tokens=24, prompt=["CCO", "CC(=O)Cl"])
    finished = [s for s in samples if s.finished]
    assert len(samples) == 12 and finished
    for s in samples:
        assert s.logp == pytest.approx(sequence_logp(model, TOKENIZER, s.tokens, prompt=["CCO", "CC(=O)Cl"]), abs=1e-3)
        if s.finished and s.tokens[-1] == TOKENIZER.eos_id:  # the SMILES string re-encodes to the same tokens
            assert s.logp == pytest.approx(
                sequence_logp(model, TOKENIZER, s.text, prompt=["CCO", "CC(=O)Cl"]), abs=1e-3
            )


def test_seed_reproduces_and_batches_do_not_change_the_draw_count():
    model = language_model("test_lstm")
    a = sample(model, TOKENIZER, 7, batch_size=3, seed=11, max_tokens=20)
    b = sample(model, TOKENIZER, 7, batch_size=3, seed=11, max_tokens=20)
    assert [s.text for s in a] == [s.text for s in b] and len(a) == 7
    assert [s.text for s in sample(model, TOKENIZER, 7, batch_size=3, seed=12, max_tokens=20)] != [s.text for s in a]


def test_greedy_equals_top1_and_follows_the_argmax():
    model = language_model("test_lstm")
    greedy = sample_batch(model, TOKENIZER, 3, temperature=0, max_tokens=10)
    top1 = sample_batch(model, TOKENIZER, 3, temperature=1.0, top_k=1, max_tokens=10)
    assert len({s.text for s in greedy}) == 1 and [s.text for s in greedy] == [s.text for s in top1]
    # the first greedy token is the most likely allowed token after <bos>
    logits = next_token_logits(model, torch.tensor([[TOKENIZER.bos_id]]))[0, -1]
    logits[[TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.unk_id]] = float("-inf")
    first = TOKENIZER.tokens[int(logits.argmax())]
    assert greedy[0].text.startswith(first) or (not greedy[0].text and first in ("<eos>", "<sep>"))


def test_top_k_restricts_to_the_k_most_likely_first_tokens():
    model = language_model("test_lstm")
    logits = next_token_logits(model, torch.tensor([[TOKENIZER.bos_id]]))[0, -1]
    logits[[TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.unk_id]] = float("-inf")
    allowed = {TOKENIZER.tokens[i] for i in logits.topk(3).indices.tolist()}
    samples = sample(model, TOKENIZER, 40, batch_size=40, seed=0, top_k=3, max_tokens=1)
    firsts = {
        TOKENIZER.tokens[TOKENIZER.encode(s.text, bos=False, eos=False)[0]] if s.text else "<end>" for s in samples
    }
    assert firsts <= allowed | {"<end>"} and len(firsts) > 1


def test_low_temperature_concentrates_the_draw():
    model = language_model("test_lstm")
    cold = sample(model, TOKENIZER, 30, batch_size=30, seed=0, temperature=0.05, max_tokens=6)
    hot = sample(model, TOKENIZER, 30, batch_size=30, seed=0, temperature=3.0, max_tokens=6)
    assert len({s.text for s in cold}) < len({s.text for s in hot})


def test_unfinished_samples_are_marked_and_never_valid():
    model = language_model("test_lstm")
    samples = sample_batch(model, TOKENIZER, 4, max_tokens=2, temperature=0.0)
    rows = sample_rows(samples)
    for s, row in zip(samples, rows):
        assert len(s.tokens) <= 2
        assert row["valid"] == 0 or s.finished
    assert [r["id"] for r in sample_rows(samples, start=10)] == ["gen10", "gen11", "gen12", "gen13"]


def test_prompt_ids_end_with_a_separator():
    assert prompt_ids(TOKENIZER, None) == [TOKENIZER.bos_id]
    ids = prompt_ids(TOKENIZER, ["CCO"])
    assert ids[0] == TOKENIZER.bos_id and ids[-1] == TOKENIZER.sep_id and TOKENIZER.decode(ids) == "CCO"
