"""Completion at a cursor: the cached, batched search equals a straightforward reference; cursor handling.

The references below recompute every candidate from scratch with the full forward pass
(`CodeFill.next_value_log_probs` on context + continuation, no KV cache, no memo, one candidate
list at a time), so they check the incremental paths of `CodeFill.prefill` / `next_log_probs_after`
and the batched search of `Completer.complete_words` without sharing their code.
"""

from __future__ import annotations

import math

import pytest
import torch

from domains.code.bpe import ValueTokenizer
from domains.code.complete import (
    Completer,
    cursor_context,
    cursor_prefix,
    cursor_tokens,
)
from domains.code.corpus import stdlib_root
from domains.code.streams import NEWLINE, NEWLINE_VALUE, TYPE_IDS, TYPES, extract_streams
from zoo import create_model
from zoo.errors import ZooError
from zoo.models.codefill import CodeFill, Hypothesis, beam_search

SOURCE = (stdlib_root() / "textwrap.py").read_text()
# (line, col) cursors in textwrap.py: typing an identifier, after a dot, at a line start, in a call.
SOURCE_LINES = SOURCE.split("\n")


def _cursor(line: int, text: str, offset: int = 0) -> tuple[int, int]:
    return line, SOURCE_LINES[line - 1].index(text) + offset


@pytest.fixture(scope="module")
def tokenizer() -> ValueTokenizer:
    paths = ["textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "json/decoder.py"]
    values = (v for p in paths for v in extract_streams((stdlib_root() / p).read_text()).values)
    return ValueTokenizer.train(values, vocab_size=500)


def make_model(tokenizer: ValueTokenizer, seed: int = 0, **kw) -> CodeFill:
    torch.manual_seed(seed)
    model = create_model("test_codefill", vocab_size=tokenizer.vocab_size, num_types=len(TYPES), context=48, **kw)
    with torch.no_grad():  # a non-trivial learned-looking head and type table, so re-ranking matters
        model.head.value_bias.normal_(0, 1.0)
        model.head.statement_bias.normal_(0, 1.0)
    model.set_type_table(torch.randint(0, 20, (tokenizer.vocab_size, len(TYPES))).float())
    return model.eval()


CONFIGS = {"hard": {}, "soft": {"sharing": "soft"}, "value-only": {"multitask": False}}


# ----------------------------------------------------------------------------- the references


def full_log_probs(model, values, types, continuations, continuation_types, task="value"):
    """(N, V) next-piece log-probs and (N, T) type log-probs by the full forward pass, one row per continuation."""
    v = torch.tensor([values + c for c in continuations])
    t = torch.tensor([types + c for c in continuation_types])
    x = model.pack(v, t if model.multitask else None)
    log_probs, type_log_probs = model.next_value_log_probs(x, task=task, last_only=True)
    return log_probs[:, -1], (type_log_probs[:, -1] if type_log_probs is not None else None)


def reference_words(completer: Completer, source: str, line: int, col: int, topk: int) -> list[dict]:
    """The documented token-mode search, written out directly with no cache and per-candidate loops."""
    model, tok = completer.model, completer.tokenizer
    ctx = cursor_context(source, line, col, tok, model.context)
    keep = model.context - completer.max_word_pieces
    values, types = ctx.values[-keep:], ctx.types[-keep:]
    texts = [b.decode("utf-8", "ignore") for b in tok.piece_bytes]
    word_start = [tok.is_word_start[i] for i in range(tok.vocab_size)]
    insertable = [bool(completer.insertable[i]) for i in range(tok.vocab_size)]

    def fits(text: str) -> bool:
        return text.startswith(ctx.fragment) or ctx.fragment.startswith(text)

    first, types0 = full_log_probs(model, values, types, [[]], [[]])
    first, types0 = first[0], (types0[0] if types0 is not None else None)
    width = max(2 * topk, 12)
    starts = [i for i in range(tok.vocab_size) if word_start[i] and insertable[i] and fits(texts[i].lstrip(" "))]
    starts.sort(key=lambda i: -float(first[i]))
    partial = [([i], float(first[i])) for i in starts[:width]]
    finals: dict[str, tuple[float, int]] = {}
    for _ in range(completer.max_word_pieces):
        if not partial:
            break
        rows = []
        for pieces, score in partial:
            word_type = 0 if types0 is None else int(model.type_of_value(pieces[0], types0))
            log_probs, _ = full_log_probs(model, values, types, [pieces], [[word_type] * len(pieces)])
            rows.append((pieces, score, word_type, log_probs[0]))
        grown = []
        for pieces, score, word_type, log_probs in rows:
            text = "".join(texts[p] for p in pieces).lstrip(" ")
            if text.startswith(ctx.fragment):
                ends = torch.tensor([log_probs[i] for i in range(tok.vocab_size) if word_start[i]])
                final = score + float(torch.logsumexp(ends, 0))
                if final > finals.get(text, (-math.inf, 0))[0]:
                    finals[text] = (final, word_type)
            more = [(float(log_probs[i]), i) for i in range(tok.vocab_size) if not word_start[i] and insertable[i]]
            for lp, piece in sorted(more, key=lambda m: -m[0])[:width]:
                if fits(text + texts[piece]):
                    grown.append((pieces + [piece], score + lp))
        kth = sorted((s for s, _ in finals.values()), reverse=True)[topk - 1] if len(finals) >= topk else -math.inf
        partial = sorted((g for g in grown if g[1] > kth), key=lambda g: -g[1])[:width]
    ranked = sorted(finals.items(), key=lambda kv: -kv[1][0])[:topk]
    return [completer._item(label, type_id, score, ctx.after_dot) for label, (score, type_id) in ranked]


def reference_statement(model, values, types, beam_size, max_steps, stop_ids, allowed=None) -> list[Hypothesis]:
    """Beam search whose every step recomputes each hypothesis from the whole context (no cache)."""
    keep = model.context - max_steps
    values, types = values[-keep:], types[-keep:]

    def step(hyps):
        log_probs, type_log_probs = full_log_probs(
            model, values, types, [h.tokens for h in hyps], [h.types for h in hyps], "statement"
        )
        if allowed is not None:
            log_probs = log_probs.masked_fill(~allowed, float("-inf"))

        def type_of(n, v):
            return 0 if type_log_probs is None else int(model.type_of_value(v, type_log_probs[n]))

        return log_probs, type_of

    return beam_search(step, beam_size, max_steps, stop_ids)


def assert_same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]], tol: float = 1e-4) -> None:
    """Same labels in the same order and log-scores within `tol`; only labels whose reference log-scores are
    within `tol` of each other (a tie at float32 precision) may trade places."""
    assert len(got) == len(want)
    for (label, score), (want_label, want_score) in zip(got, want):
        assert score == pytest.approx(want_score, abs=tol)
        if label != want_label:
            tied = {w for w, s in want if abs(s - want_score) < tol}
            assert label in tied and want_label in tied, (got, want)


def as_pairs(items: list[dict]) -> list[tuple[str, float]]:
    return [(i["label"], math.log(i["score"])) for i in items]


# ----------------------------------------------------------------------------- token mode

CURSORS = [
    _cursor(252, "self.width", 2),  # typing `self` (fragment "se")
    _cursor(126, "width = width", len("width = wi")),  # typing an identifier after `=`
    _cursor(280, "self.width", len("self.")),  # right after a dot
    _cursor(259, "self.placeholder", len("self.pl")),  # typing an attribute
    (143, 4),  # a line start inside a class
    (1, 0),  # the very start of the file
]


@pytest.mark.parametrize("config", CONFIGS)
def test_token_completion_equals_the_reference(tokenizer, config):
    completer = Completer(make_model(tokenizer, **CONFIGS[config]), tokenizer)
    typed = 0
    for line, col in CURSORS:
        for topk in (1, 5):
            got = completer.complete(SOURCE, line, col, mode="token", topk=topk)
            want = reference_words(completer, SOURCE, line, col, topk)
            assert [(i["kind"], i["detail"]) for i in got] == [(i["kind"], i["detail"]) for i in want]
            assert_same_ranking(as_pairs(got), as_pairs(want), tol=1e-5)
            typed += bool(cursor_tokens(SOURCE, line, col).fragment)
    assert typed >= 4  # the cursors include words being typed


def test_fitting_pieces_are_exactly_the_compatible_ones(tokenizer):
    completer = Completer(make_model(tokenizer), tokenizer)
    allowed = completer.word_start & completer.insertable
    for fragment in ("", "s", "se", "self", "TextWrapper", "_", "zzqx", "é"):
        want = {
            i
            for i in allowed.nonzero().flatten().tolist()
            if completer.piece_text[i].lstrip(" ").startswith(fragment)
            or fragment.startswith(completer.piece_text[i].lstrip(" "))
        }
        got = completer._fitting_starts(fragment)
        assert sorted(got) == sorted(want) and len(got) == len(set(got))


# ----------------------------------------------------------------------------- statement mode


@pytest.mark.parametrize("config", CONFIGS)
def test_statement_beam_equals_the_reference(tokenizer, config):
    model = make_model(tokenizer, seed=1, **CONFIGS[config])
    completer = Completer(model, tokenizer, beam_size=4, max_statement_pieces=12)
    allowed = completer.insertable | completer._stop_mask()
    for line, col in CURSORS[1:5]:
        ctx = cursor_context(SOURCE, line, col, tokenizer, model.context)
        got = model.complete_statement(ctx.values, ctx.types, 4, 12, completer.stop_ids, allowed=allowed)
        want = reference_statement(model, ctx.values, ctx.types, 4, 12, completer.stop_ids, allowed)
        pairs = lambda hyps: [(tuple(h.tokens), h.score) for h in hyps]
        assert_same_ranking(pairs(got), pairs(want))
        same = [(g, w) for g, w in zip(got, want) if g.tokens == w.tokens]
        assert same and all(g.types == w.types and g.finished == w.finished for g, w in same)
    led = 0
    for cursor in [c for c in CURSORS if cursor_tokens(SOURCE, *c).fragment]:
        # a typed fragment is first completed with the best word, which leads the statement
        words = completer.complete(SOURCE, *cursor, mode="token", topk=3)
        items = completer.complete(SOURCE, *cursor, mode="statement", topk=3)
        assert bool(words) == bool(items) and all(i["label"].startswith(words[0]["label"]) for i in items)
        led += bool(items)
    assert led


# ----------------------------------------------------------------------------- the continuation memo


@pytest.mark.parametrize("config", CONFIGS)
def test_memoised_extension_equals_a_fresh_state(tokenizer, config):
    model = make_model(tokenizer, seed=2, **CONFIGS[config])
    torch.manual_seed(5)
    values = torch.randint(1, tokenizer.vocab_size, (40,)).tolist()
    types = torch.randint(1, len(TYPES), (40,)).tolist()
    state = model.prefill(values, types, reserve=6)
    rows = torch.randint(1, tokenizer.vocab_size, (3, 5))
    row_types = torch.randint(1, len(TYPES), (3, 5))
    for length in range(1, 6):  # each call extends the previous one by a piece: the memo path
        for task in ("value", "statement"):
            got, got_types = model.next_log_probs_after(state, rows[:, :length], row_types[:, :length], task)
            fresh = model.prefill(values, types, reserve=6)
            want, want_types = model.next_log_probs_after(fresh, rows[:, :length], row_types[:, :length], task)
            full, full_types = full_log_probs(
                model, values[-42:], types[-42:], rows[:, :length].tolist(), row_types[:, :length].tolist(), task
            )
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(got, full, rtol=1e-4, atol=1e-4)
            if full_types is not None:
                torch.testing.assert_close(got_types, full_types, rtol=1e-4, atol=1e-4)
    # Rows that share no memoised prefix (a new first piece) and a mix of old and new rows are still right.
    mixed = torch.cat([rows[:1, :3], torch.randint(1, tokenizer.vocab_size, (2, 3))])
    mixed_types = torch.cat([row_types[:1, :3], torch.randint(1, len(TYPES), (2, 3))])
    got, _ = model.next_log_probs_after(state, mixed, mixed_types)
    full, _ = full_log_probs(model, values[-42:], types[-42:], mixed.tolist(), mixed_types.tolist())
    torch.testing.assert_close(got, full, rtol=1e-4, atol=1e-4)
    if model.multitask:  # the same pieces with other types are another continuation
        other_types = (row_types[:, :3] % 7) + 1
        got, _ = model.next_log_probs_after(state, rows[:, :3], other_types)
        full, _ = full_log_probs(model, values[-42:], types[-42:], rows[:, :3].tolist(), other_types.tolist())
        torch.testing.assert_close(got, full, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- the cursor


def test_cursor_prefix_and_fragment():
    source = "import json\n\ndef load(path):\n    with open(path) as handle:\n        return json.lo\n"
    assert cursor_prefix(source, 5, len("        return json.lo")).endswith("return json.lo")
    assert cursor_prefix(source, 1, 0) == ""
    assert cursor_prefix(source, 3, 4) == "import json\n\ndef "
    cur = cursor_tokens(source, 5, len("        return json.lo"))
    assert cur.fragment == "lo" and cur.after_dot and cur.tokens[-1].value == "."
    cur = cursor_tokens(source, 5, len("        return json."))
    assert cur.fragment == "" and cur.after_dot
    cur = cursor_tokens(source, 5, len("        return js"))  # inside a word: the part before the cursor
    assert cur.fragment == "js" and not cur.after_dot and cur.tokens[-1].value == "return"
    cur = cursor_tokens(source, 3, len("def load(path"))
    assert cur.fragment == "path" and cur.tokens[-1].value == "("
    cur = cursor_tokens(source, 3, len("def load(path)"))  # after punctuation nothing is being typed
    assert cur.fragment == "" and cur.tokens[-1].value == ")"
    cur = cursor_tokens("x = 12", 1, 6)  # a number being typed
    assert cur.fragment == "12"
    with pytest.raises(ZooError, match="line=9"):
        cursor_prefix(source, 9, 0)
    with pytest.raises(ZooError, match="col=99"):
        cursor_prefix(source, 1, 99)
    with pytest.raises(ZooError, match="line=0"):
        cursor_prefix(source, 0, 0)


def test_cursor_context_is_the_window_of_pieces_before_the_fragment(tokenizer):
    line, col = CURSORS[1]
    cur = cursor_tokens(SOURCE, line, col)
    pieces = [(p, TYPE_IDS[t.type]) for t in cur.tokens for p in tokenizer.encode_word(t.value)]
    for window in (8, 48, 100000):
        ctx = cursor_context(SOURCE, line, col, tokenizer, window)
        assert list(zip(ctx.values, ctx.types)) == pieces[-window:]
        assert ctx.fragment == cur.fragment and ctx.after_dot == cur.after_dot and ctx.parsed == cur.parsed
    start = cursor_context("", 1, 0, tokenizer, 48)  # nothing before the cursor: one statement boundary
    assert start.values == [tokenizer.id(NEWLINE_VALUE)] and start.types == [TYPE_IDS[NEWLINE]]
    assert start.fragment == "" and not start.after_dot
    broken = cursor_context("def f(:\n    return sel", 2, len("    return sel"), tokenizer, 48)
    assert broken.fragment == "sel" and not broken.parsed


def test_completer_api_is_unchanged(tokenizer, tmp_path):
    from domains.code.complete import save_codefill

    model = make_model(tokenizer)
    completer = Completer(model, tokenizer)
    items = completer.complete(SOURCE, *CURSORS[1], topk=3)
    assert items and all(set(i) == {"label", "kind", "score", "detail", "lsp_kind"} for i in items)
    save_codefill(tmp_path / "m", model, tokenizer)
    assert Completer.from_pretrained(tmp_path / "m").complete(SOURCE, *CURSORS[1], topk=3) == items
    with pytest.raises(ZooError, match="mode"):
        completer.complete(SOURCE, 1, 0, mode="line")
    with pytest.raises(ZooError, match="topk"):
        completer.complete(SOURCE, 1, 0, topk=0)


def test_a_reused_context_gives_the_same_items(tokenizer):
    model = make_model(tokenizer, seed=3)
    cached, fresh = Completer(model, tokenizer), Completer(model, tokenizer, reuse_context=False)
    line, col = CURSORS[3]  # `self.pl|aceholder`: typing on keeps the context and grows the fragment
    for typed in range(5):
        got = cached.complete(SOURCE, line, col + typed, topk=5)
        want = fresh.complete(SOURCE, line, col + typed, topk=5)
        assert [i["detail"] for i in got] == [i["detail"] for i in want]
        assert_same_ranking(as_pairs(got), as_pairs(want), tol=1e-5)
    state = cached._last_context[1]
    cached.complete(SOURCE, line, col, topk=5)
    assert cached._last_context[1] is state  # the same context was not encoded again
    with torch.no_grad():  # new weights: the remembered context is stale and must not be used
        model.encoders["shared"].blocks[0].mlp.fc1.weight.mul_(3.0)
    got = cached.complete(SOURCE, line, col, topk=5)
    assert cached._last_context[1] is not state
    assert_same_ranking(as_pairs(got), as_pairs(fresh.complete(SOURCE, line, col, topk=5)), tol=1e-5)
    cached.forget_context()
    assert cached._last_context is None
