"""CodeFill: training on a few stdlib files, re-ranking, beam search, backbones, save/load, completion."""

from __future__ import annotations

import pytest
import torch

from domains.code.bpe import ValueTokenizer
from domains.code.complete import LSP_KINDS, Completer, save_codefill
from domains.code.corpus import (
    CorpusStats,
    SourceFile,
    collate_windows,
    make_windows,
    process_files,
    stdlib_root,
    value_type_counts,
)
from domains.code.metrics import TokenCompletionMetrics
from domains.code.ngram import KneserNeyLM
from domains.code.streams import TYPES
from zoo import create_model
from zoo.errors import ZooError
from zoo.models.codefill import BACKBONE_FAMILIES, CodeFill, beam_search

TRAIN = ["json/decoder.py", "json/encoder.py", "json/scanner.py", "textwrap.py", "shlex.py", "fnmatch.py", "glob.py",
         "bisect.py", "heapq.py", "colorsys.py"]  # fmt: skip
HELD_OUT = ["json/tool.py"]
CONTEXT = 64


def encoded(tokenizer, paths):
    files = [SourceFile(p, (stdlib_root() / p).read_text(), p.split("/")[0]) for p in paths]
    return [tokenizer.encode_streams(f.streams, f.path) for f in process_files(files, CorpusStats(), progress=False)]


@pytest.fixture(scope="module")
def trained():
    """test_codefill trained for 200 steps on ten stdlib modules (about 20 s on one CPU thread)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    files = [SourceFile(p, (stdlib_root() / p).read_text()) for p in TRAIN]
    processed = process_files(files, CorpusStats(), progress=False)
    tokenizer = ValueTokenizer.train((v for f in processed for v in f.streams.values), vocab_size=500)
    train = [tokenizer.encode_streams(f.streams, f.path) for f in processed]
    model = create_model("test_codefill", vocab_size=tokenizer.vocab_size, num_types=len(TYPES), context=CONTEXT)
    model.set_type_table(value_type_counts(train, tokenizer.vocab_size, len(TYPES)))
    windows = make_windows(train, CONTEXT)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(200):
        index = torch.randint(0, len(windows), (16,), generator=generator).tolist()
        loss = model.loss(collate_windows([windows[i] for i in index]))
        optimizer.zero_grad()
        loss["loss"].backward()
        optimizer.step()
        losses.append({k: float(v.detach()) for k, v in loss.items()})
    return model.eval(), tokenizer, train, losses


def test_loss_falls_on_every_task(trained):
    _, _, _, losses = trained
    for task in ("loss", "value", "type", "statement"):
        first = sum(step[task] for step in losses[:10]) / 10
        last = sum(step[task] for step in losses[-10:]) / 10
        assert last < 0.7 * first, f"{task}: {first:.3f} -> {last:.3f}"


def test_value_accuracy_beats_the_unigram_baseline(trained):
    model, tokenizer, train, _ = trained
    held_out = encoded(tokenizer, HELD_OUT)
    batch = collate_windows(make_windows(held_out, CONTEXT))
    x = CodeFill.pack(batch["values"][:, :-1], batch["types"][:, :-1])
    log_probs, _ = model.next_value_log_probs(x)
    ours = TokenCompletionMetrics()
    ours.update(log_probs, batch["values"][:, 1:], batch["mask"][:, 1:], batch["cardinal"][:, 1:])
    unigram = KneserNeyLM(order=1).fit([f.values for f in train])
    baseline = TokenCompletionMetrics()
    for f in held_out:
        ranks = torch.tensor([unigram.rank(v) for v in f.values[1:]])
        baseline.update(None, None, torch.ones_like(ranks, dtype=torch.bool), torch.tensor(f.cardinal[1:]), ranks)
    ours, baseline = ours.compute(), baseline.compute()
    assert ours["n"] == baseline["n"] > 500
    assert ours["acc"] > baseline["acc"] + 0.1 and ours["mrr@10"] > baseline["mrr@10"] + 0.1


def test_reranking_moves_the_value_of_the_predicted_type_up():
    model = create_model("test_codefill")
    a, b, x_type, y_type = 10, 11, 5, 6
    counts = torch.zeros(model.vocab_size, model.num_types)
    counts[a, x_type], counts[b, y_type] = 100, 100
    model.set_type_table(counts)
    logits = torch.zeros(model.vocab_size)
    logits[a], logits[b] = 3.0, 3.5  # the model prefers b ...
    values = torch.log_softmax(logits, -1)
    types = torch.log_softmax(torch.full((model.num_types,), -5.0).index_fill(0, torch.tensor([x_type]), 5.0), -1)
    reranked = model.rerank(values, types)  # ... but predicts a type that only a takes
    assert values[b] > values[a] and reranked[a] > reranked[b]
    assert torch.isclose(reranked.exp().sum(), torch.tensor(1.0), atol=1e-5)
    other = torch.log_softmax(torch.full((model.num_types,), -5.0).index_fill(0, torch.tensor([y_type]), 5.0), -1)
    assert model.rerank(values, other)[b] - model.rerank(values, other)[a] > values[b] - values[a]
    assert torch.equal(model.rerank(values, types, weight=0.0), values)
    assert int(model.type_of_value(a, types)) == x_type and int(model.type_of_value(b, other)) == y_type
    with pytest.raises(ZooError, match="type table"):
        model.set_type_table(torch.zeros(3, 4))


def test_beam_of_one_is_greedy():
    torch.manual_seed(3)
    model = create_model("test_codefill").eval()
    values = torch.randint(1, model.vocab_size, (20,)).tolist()
    types = torch.randint(1, model.num_types, (20,)).tolist()
    free = model.greedy_statement(values, types, max_steps=10)
    beam = model.complete_statement(values, types, beam_size=1, max_steps=10)
    assert len(beam) == 1 and beam[0].tokens == free.tokens and beam[0].types == free.types
    assert beam[0].score == pytest.approx(free.score, abs=1e-5)
    stop = [free.tokens[3]]  # a stop piece the greedy path meets at step 4
    free = model.greedy_statement(values, types, max_steps=10, stop_ids=stop)
    beam = model.complete_statement(values, types, beam_size=1, max_steps=10, stop_ids=stop)
    assert beam[0].tokens == free.tokens and len(free.tokens) <= 4 and free.finished and beam[0].finished
    wide = model.complete_statement(values, types, beam_size=4, max_steps=6, stop_ids=stop)
    assert len(wide) == 4 and len({tuple(h.tokens) for h in wide}) == 4
    assert [h.score for h in wide] == sorted((h.score for h in wide), reverse=True)


@pytest.mark.parametrize("backbone, sharing", [("transformer", "hard"), ("transformer", "soft"), ("mamba", "hard")])
def test_incremental_decoding_equals_the_full_forward(backbone, sharing):
    torch.manual_seed(0)
    model = create_model("test_codefill", backbone=backbone, sharing=sharing, context=40).eval()
    x = model.example_inputs(1, 30)
    state = model.prefill(x[0, :, 0].tolist(), x[0, :, 1].tolist(), reserve=5)
    assert set(state.caches) == (set(model.encoders) if backbone == "transformer" else set())
    new = model.example_inputs(3, 4)
    for task in ("value", "statement"):
        got, got_types = model.next_log_probs_after(state, new[..., 0], new[..., 1], task)
        full = torch.cat([x[:, -35:].expand(3, -1, -1), new], dim=1)
        want, want_types = model.next_value_log_probs(full, task=task, last_only=True)
        torch.testing.assert_close(got, want[:, -1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got_types, want_types[:, -1], rtol=1e-4, atol=1e-4)
    right_after, _ = model.next_log_probs_after(state)
    torch.testing.assert_close(right_after[0], model.next_value_log_probs(x[:, -35:])[0][0, -1], rtol=1e-4, atol=1e-4)


def test_generic_beam_search_on_a_known_distribution():
    # A two-token world: "a" then stop is likelier as a whole (0.6) than "b" (0.4) then anything.
    table = {(): [0.0, 0.4, 0.6], (1,): [0.9, 0.1, 0.0], (2,): [1.0, 0.0, 0.0]}

    def step(hyps):
        rows = [table.get(tuple(h.tokens[:1]), [1.0, 0.0, 0.0]) for h in hyps]
        return torch.tensor(rows).clamp_min(1e-12).log(), lambda n, v: 0

    best = beam_search(step, beam_size=2, max_steps=3, stop_ids=[0])
    assert best[0].tokens == [2, 0] and best[0].score == pytest.approx(torch.log(torch.tensor(0.6)).item())


@pytest.mark.parametrize("backbone", sorted(BACKBONE_FAMILIES))
def test_backbone_swap(backbone):
    extra = {"backbone_kwargs": {"filter_order": 16}} if backbone == "hyena" else {}
    torch.manual_seed(0)
    model = create_model("test_codefill", backbone=backbone, **extra)
    assert sum(p.numel() for p in model.parameters()) <= 100_000
    batch = {
        "values": torch.randint(1, model.vocab_size, (2, 24)),
        "types": torch.randint(1, model.num_types, (2, 24)),
        "mask": torch.ones(2, 24, dtype=torch.bool),
        "statement": torch.rand(2, 24) > 0.3,
    }
    losses = model.loss(batch)
    losses["loss"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    out = model.forward_tasks(model.example_inputs(2, 24))
    assert out["value"].shape == out["statement"].shape == (2, 24, model.vocab_size)
    assert out["type"].shape == (2, 24, model.num_types)
    # causal: changing the last piece changes nothing before it
    model.eval()
    x = model.example_inputs(1, 24)
    y = x.clone()
    y[0, -1, 0] = (y[0, -1, 0] + 1) % model.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :-1], model(y)[:, :-1])


def test_unknown_backbone_and_bad_inputs():
    with pytest.raises(ZooError, match="unknown backbone"):
        create_model("test_codefill", backbone="lstm_transformer_9000")
    model = create_model("test_codefill")
    with pytest.raises(ZooError, match=r"\(B, L, 2\)"):
        model(torch.randint(0, 10, (2, 5)))
    with pytest.raises(ZooError, match="sharing"):
        create_model("test_codefill", sharing="medium")


def test_value_only_ablation():
    model = create_model("test_codefill", multitask=False)
    x = model.example_inputs(2, 12)
    assert x.shape == (2, 12) and model(x).shape == (2, 12, model.vocab_size)
    batch = {"values": x, "types": torch.zeros_like(x), "mask": torch.ones_like(x, dtype=torch.bool)}
    losses = model.loss({**batch, "statement": torch.ones_like(batch["mask"])})
    assert "type" not in losses and model.forward_tasks(x)["type"] is None
    assert sum(p.numel() for p in model.parameters()) < sum(
        p.numel() for p in create_model("test_codefill").parameters()
    )


def test_soft_sharing_penalty():
    model = create_model("test_codefill", sharing="soft")
    assert set(model.encoders) == {"tvp", "ttp", "sc"}
    for key in ("ttp", "sc"):
        model.encoders[key].load_state_dict(model.encoders["tvp"].state_dict())
    assert float(model.sharing_penalty().detach()) == 0.0
    with torch.no_grad():
        next(model.encoders["sc"].parameters()).add_(1.0)
    assert float(model.sharing_penalty().detach()) > 0.0
    batch = {"values": torch.randint(1, 500, (2, 9)), "types": torch.randint(1, 60, (2, 9))}
    batch.update(mask=torch.ones(2, 9, dtype=torch.bool), statement=torch.ones(2, 9, dtype=torch.bool))
    assert "sharing" in model.loss(batch)


def test_save_load_equal_outputs(trained, tmp_path):
    model, tokenizer, _, _ = trained
    x = model.example_inputs(2, 30)
    fresh = create_model("test_codefill", vocab_size=tokenizer.vocab_size, num_types=len(TYPES), context=CONTEXT)
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    expected, got = model.forward_tasks(x), fresh.forward_tasks(x)
    for task in ("value", "type", "statement"):
        torch.testing.assert_close(got[task], expected[task], rtol=0, atol=0)
    assert torch.equal(fresh.type_given_value, model.type_given_value)

    save_codefill(tmp_path / "codefill", model, tokenizer)
    completer = Completer.from_pretrained(tmp_path / "codefill")
    assert completer.tokenizer.to_str() == tokenizer.to_str()
    torch.testing.assert_close(completer.model.forward_tasks(x)["value"], expected["value"], rtol=0, atol=0)
    source = "import json\n\ndef load(path):\n    with open(path) as handle:\n        return json.lo"
    line, col = 5, len("        return json.lo")
    assert completer.complete(source, line, col) == Completer(model, tokenizer).complete(source, line, col)


def test_tokenizer_round_trip(trained, tmp_path):
    _, tokenizer, _, _ = trained
    path = tokenizer.save(tmp_path)
    loaded = ValueTokenizer.load(path)
    assert loaded.to_str() == tokenizer.to_str() == path.read_text()
    for word in ("self", "json_decoder", "héllo_wörld", "'\\n'", "<NEWLINE>", "<STR_LIT>", "0x7fff"):
        ids = tokenizer.encode_word(word)
        assert loaded.encode_word(word) == ids and tokenizer.decode_word(ids) == word
        assert tokenizer.is_word_start[ids[0]] and not any(tokenizer.is_word_start[i] for i in ids[1:])
    with pytest.raises(ZooError, match="not a tokenizers JSON"):
        ValueTokenizer.from_str("{}")


def test_completion_items(trained):
    model, tokenizer, _, _ = trained
    completer = Completer(model, tokenizer)
    source = "import json\n\ndef load(path):\n    with open(path) as handle:\n        return json.lo\n"
    items = completer.complete(source, 5, len("        return json.lo"), mode="token", topk=5)
    assert 1 <= len(items) <= 5 and all(set(i) == {"label", "kind", "score", "detail", "lsp_kind"} for i in items)
    assert all(i["label"].startswith("lo") for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    assert all(i["kind"] in LSP_KINDS and LSP_KINDS[i["kind"]] == i["lsp_kind"] for i in items)
    assert all(i["detail"] in TYPES for i in items)
    statements = completer.complete(source, 5, len("        return json.lo"), mode="statement", topk=3)
    assert statements and all(s["label"].startswith("lo") for s in statements)
    fresh = completer.complete("def f(x):\n    ", 2, 4, mode="statement", topk=3)
    assert fresh and all(s["label"] and "<NEWLINE>" not in s["label"] and "_LIT>" not in s["label"] for s in fresh)
    assert completer.complete("", 1, 0, topk=3)  # the very start of a file
    with pytest.raises(ZooError, match="line=9"):
        completer.complete(source, 9, 0)
    with pytest.raises(ZooError, match="col=99"):
        completer.complete(source, 1, 99)
    with pytest.raises(ZooError, match="mode"):
        completer.complete(source, 1, 0, mode="line")
