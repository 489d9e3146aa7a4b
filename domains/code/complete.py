"""Completion at a cursor, and statement-completion evaluation, for CodeFill models and the n-gram baseline.

CodeFill (Izadi, Gismondi, Gousios, ICSE 2022) completes the next token or the
rest of the statement after the code before the cursor. `Completer.complete`
turns source text and a cursor into completion items
`{"label", "kind", "score", "detail", "lsp_kind"}`:

- the prefix (lines before the cursor and the cursor line up to `col`) is turned
  into streams with `partial=True` (tolerant of code that does not parse);
- an identifier, keyword or number that ends exactly at the cursor is what the user
  is typing: it leaves the context and candidates must start with it;
- `mode="token"`: whole source tokens, built piece by piece with an exact pruned
  search (a partial word is extended only while it can still beat the k-th best
  finished word); a word's score is P(pieces) x P(next piece starts a new token);
- `mode="statement"`: beam search over the statement head until `<NEWLINE>`; labels
  are the detokenized rest of the statement;
- `kind`: the LSP CompletionItemKind of the type predicted for the candidate
  (argmax_t q(t) P(t | first piece)); `detail` is that CodeFill type.

Speed (one CPU thread; `python -m benchmarks.code_latency`): the context is encoded once
(`CodeFill.prefill`, a KV cache); each search round scores all candidates in one batched
forward of their newest piece only (the state remembers the rest); a request with the same
context as the previous one, as while a word is typed, reuses its encoding (`reuse_context`).
None of this changes the items: tests compare them with a recompute-everything reference.

Cursor convention (as jedi's): `line` is 1-based, `col` is a 0-based character
offset into that line.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from zoo.errors import ZooError

from .bpe import PAD_VALUE, TOKENIZER_FILE, EncodedFile, ValueTokenizer
from .metrics import StatementMetrics
from .streams import (
    ALIAS,
    ATTRIBUTE,
    CLASS_NAME,
    DEDENT_VALUE,
    EOS_VALUE,
    FUNCTION_CALL,
    FUNCTION_NAME,
    GLOBAL_VARIABLE,
    INDENT_VALUE,
    KEYWORD_ARGUMENT,
    KEYWORD_TYPES,
    LIB,
    LIBRARY,
    LOCAL_VARIABLE,
    MODULE,
    NEWLINE,
    NEWLINE_VALUE,
    NUM_LIT,
    NUMBER,
    OP,
    PARAMETER,
    STR_LIT,
    STRING,
    TYPE_IDS,
    TYPES,
    Token,
    detokenize,
    extract_streams,
)

MODES = ("token", "statement")
LSP_KINDS = {
    "Text": 1, "Method": 2, "Function": 3, "Constructor": 4, "Field": 5, "Variable": 6, "Class": 7, "Interface": 8,
    "Module": 9, "Property": 10, "Unit": 11, "Value": 12, "Enum": 13, "Keyword": 14, "Snippet": 15, "Color": 16,
    "File": 17, "Reference": 18, "Folder": 19, "EnumMember": 20, "Constant": 21, "Struct": 22, "Event": 23,
    "Operator": 24, "TypeParameter": 25,
}  # fmt: skip
TYPE_KINDS = {
    FUNCTION_NAME: "Function",
    FUNCTION_CALL: "Function",
    CLASS_NAME: "Class",
    PARAMETER: "Variable",
    LOCAL_VARIABLE: "Variable",
    GLOBAL_VARIABLE: "Variable",
    KEYWORD_ARGUMENT: "Variable",
    ATTRIBUTE: "Field",
    MODULE: "Module",
    LIBRARY: "Module",
    LIB: "Module",
    ALIAS: "Module",
    NUMBER: "Value",
    STRING: "Value",
    OP: "Operator",
    **dict.fromkeys(KEYWORD_TYPES, "Keyword"),
}
_NOT_INSERTABLE = (PAD_VALUE, NEWLINE_VALUE, INDENT_VALUE, DEDENT_VALUE, EOS_VALUE, STR_LIT, NUM_LIT)


def kind_of(type_name: str, after_dot: bool = False) -> str:
    """LSP kind for a CodeFill type (a call after `.` is a Method)."""
    if type_name == FUNCTION_CALL and after_dot:
        return "Method"
    return TYPE_KINDS.get(type_name, "Text")


# ----------------------------------------------------------------------------- the cursor


def cursor_prefix(source: str, line: int, col: int) -> str:
    """The text before the cursor (line 1-based, col 0-based characters); ZooError when out of range."""
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        raise ZooError(f"line={line} is outside the file (1..{len(lines)}); lines count from 1")
    text = lines[line - 1]
    if not 0 <= col <= len(text):
        raise ZooError(f"col={col} is outside line {line} (0..{len(text)} characters); columns count from 0")
    return "\n".join(lines[: line - 1] + [text[:col]])


class CursorTokens(NamedTuple):
    """The source tokens before a cursor (model-independent: the n-gram baseline reads them too)."""

    tokens: list[Token]
    fragment: str  # the identifier, keyword or number being typed (removed from `tokens`)
    after_dot: bool
    parsed: bool


def cursor_tokens(source: str, line: int, col: int) -> CursorTokens:
    """Streams of the text before the cursor; a word that ends exactly at the cursor is the fragment."""
    prefix = cursor_prefix(source, line, col)
    streams = extract_streams(prefix, partial=True)
    tokens = list(streams.tokens)
    fragment = ""
    if (
        tokens
        and tokens[-1].end == (line, col)
        and tokens[-1].text
        and (tokens[-1].text[-1].isalnum() or tokens[-1].text[-1] == "_")
    ):
        fragment = tokens.pop().text  # fmt: skip
    after_dot = bool(tokens) and tokens[-1].value == "."
    return CursorTokens(tokens, fragment, after_dot, streams.fully_parsed)


@dataclass
class CursorContext:
    """The model's view of a cursor: context pieces and types, and the fragment being typed."""

    values: list[int]
    types: list[int]
    fragment: str
    after_dot: bool
    parsed: bool


def cursor_context(source: str, line: int, col: int, tokenizer: ValueTokenizer, context: int) -> CursorContext:
    tokens, fragment, after_dot, parsed = cursor_tokens(source, line, col)
    values, types = [], []
    for tok in tokens[-context:]:
        for piece in tokenizer.encode_word(tok.value):
            values.append(piece)
            types.append(TYPE_IDS[tok.type])
    if not values:  # the start of a file: a statement boundary is the closest thing the model has seen
        values, types = [tokenizer.id(NEWLINE_VALUE)], [TYPE_IDS[NEWLINE]]
    return CursorContext(values[-context:], types[-context:], fragment, after_dot, parsed)


def _compatible(text: str, fragment: str) -> bool:
    return text.startswith(fragment) or fragment.startswith(text)


# ----------------------------------------------------------------------------- the completer


class Completer:
    """Completion items from a CodeFill model and its tokenizer.

    beam_size: beams of statement completion; max_statement_pieces: its length limit;
    max_word_pieces: the longest source token built in token mode.
    reuse_context: keep the last encoded context (token mode) and reuse it when the next request has the
        same one, as while a word is typed (only the fragment changes); the weights' versions are part of
        the key, so training or loading new weights never meets a stale context. Results are the same.
    """

    def __init__(
        self,
        model,
        tokenizer: ValueTokenizer,
        beam_size: int = 5,
        max_statement_pieces: int = 32,
        max_word_pieces: int = 4,
        reuse_context: bool = True,
    ):
        if getattr(model, "vocab_size", tokenizer.vocab_size) < tokenizer.vocab_size:
            raise ZooError(
                f"tokenizer has {tokenizer.vocab_size} values but the model only {model.vocab_size}; "
                "use the tokenizer saved with the model"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.beam_size, self.max_word_pieces = beam_size, max_word_pieces
        self.max_statement_pieces = max_statement_pieces
        self.reuse_context = reuse_context
        self._last_context: tuple[tuple, object] | None = None  # (key, ContextState)
        vocab = model.vocab_size
        self.word_start = torch.zeros(vocab, dtype=torch.bool)
        self.word_start[: tokenizer.vocab_size] = torch.tensor(tokenizer.is_word_start)
        self.insertable = torch.ones(vocab, dtype=torch.bool)
        self.insertable[tokenizer.vocab_size :] = False
        for special in _NOT_INSERTABLE:
            self.insertable[tokenizer.id(special)] = False
        self.not_continuation = self.word_start | ~self.insertable  # pieces that cannot extend a word
        self._start_index: tuple[list[str], list[int], dict[str, list[int]]] | None = None  # `_fitting_starts`
        self.stop_ids = [tokenizer.id(NEWLINE_VALUE), tokenizer.id(EOS_VALUE)]
        self.piece_text = [b.decode("utf-8", "ignore") for b in tokenizer.piece_bytes] + [""] * (
            vocab - tokenizer.vocab_size
        )

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, **kwargs) -> Completer:
        """A saved CodeFill folder (`save_codefill`) or any weights source whose files include tokenizer.json."""
        from zoo.factory import from_pretrained, open_weights

        weights = open_weights(source)
        text = weights.text(TOKENIZER_FILE)
        if text is None:
            raise ZooError(f"{source}: no {TOKENIZER_FILE} beside the weights; save models with save_codefill")
        return cls(from_pretrained(weights), ValueTokenizer.from_str(text), **kwargs)

    # -------------------------------------------------------------------------- entry point
    @torch.inference_mode()
    def complete(self, source: str, line: int, col: int, mode: str = "token", topk: int = 5) -> list[dict]:
        """Completion items at the cursor, best first."""
        if mode not in MODES:
            raise ZooError(f"mode={mode!r}; choose one of {MODES}")
        if topk < 1:
            raise ZooError(f"topk={topk}; give 1 or more")
        ctx = cursor_context(source, line, col, self.tokenizer, self.model.context)
        if mode == "token":
            return self.complete_words(ctx, topk)
        return self.complete_statements(ctx, topk)

    def forget_context(self) -> None:
        """Drop the remembered context (the next request encodes its context again)."""
        self._last_context = None

    def _prefill(self, ctx: CursorContext, reserve: int):
        if not self.reuse_context:
            return self.model.prefill(ctx.values, ctx.types, reserve=reserve)
        weights = tuple((id(t), t._version) for t in (*self.model.parameters(), *self.model.buffers()))
        key = (tuple(ctx.values), tuple(ctx.types), reserve, weights)
        if self._last_context is None or self._last_context[0] != key:
            # The state's memo of scored continuations stays valid for the same context: it is kept too.
            self._last_context = (key, self.model.prefill(ctx.values, ctx.types, reserve=reserve))
        return self._last_context[1]

    def _item(self, label: str, type_id: int, log_score: float, after_dot: bool) -> dict:
        type_name = TYPES[type_id]
        kind = kind_of(type_name, after_dot)
        return {
            "label": label,
            "kind": kind,
            "score": math.exp(log_score),
            "detail": type_name,
            "lsp_kind": LSP_KINDS[kind],
        }

    def _forward(self, state, continuations: list[list[int]], continuation_types: list[list[int]]):
        """Next-piece log-probs (re-ranked) and type log-probs after the context plus each continuation."""
        device = self.model.value_embed.weight.device
        new_v = torch.tensor(continuations, dtype=torch.long, device=device)
        new_t = torch.tensor(continuation_types, dtype=torch.long, device=device)
        log_probs, type_log_probs = self.model.next_log_probs_after(state, new_v, new_t)
        return log_probs.cpu(), (type_log_probs.cpu() if type_log_probs is not None else None)

    # -------------------------------------------------------------------------- token mode
    def complete_words(self, ctx: CursorContext, topk: int) -> list[dict]:
        """Whole source tokens: pruned search over pieces (see the module docstring).

        Each round scores every partial word in one batched forward; a partial word that extends one of the
        previous round costs one new position (`CodeFill.next_log_probs_after` remembers the others)."""
        state = self._prefill(ctx, self.max_word_pieces)
        log_probs, type_log_probs = self._forward(state, [[]], [[]])
        first, types0 = log_probs[0], (type_log_probs[0] if type_log_probs is not None else None)
        allowed = self.word_start & self.insertable
        candidates = first.masked_fill(~allowed, float("-inf"))
        order = torch.argsort(candidates, descending=True)
        width = max(2 * topk, 12)  # a typed fragment needs room for its short prefixes ("l" before "lo")
        partial = self._first_pieces(candidates, order, ctx.fragment, width)
        # Every piece of a word gets the type predicted for its first piece, so one look-up per first piece.
        word_type = self._first_piece_types([pieces[0] for pieces, _ in partial], types0)
        finals: dict[str, tuple[float, int]] = {}
        for _ in range(self.max_word_pieces):
            if not partial:
                break
            word_types = [[word_type[pieces[0]]] * len(pieces) for pieces, _ in partial]
            log_probs, _ = self._forward(state, [p for p, _ in partial], word_types)
            end_mass = torch.logsumexp(log_probs.masked_fill(~self.word_start, float("-inf")), dim=-1).tolist()
            more = log_probs.masked_fill(self.not_continuation, float("-inf"))
            top = torch.topk(more, min(width, more.shape[-1]), dim=-1)
            top_scores, top_pieces = top.values.tolist(), top.indices.tolist()
            grown = []
            for n, (pieces, score) in enumerate(partial):
                text = "".join(self.piece_text[p] for p in pieces).lstrip(" ")
                if text.startswith(ctx.fragment):
                    final = score + end_mass[n]
                    if final > finals.get(text, (-math.inf, 0))[0]:
                        finals[text] = (final, word_types[n][0])
                for lp, piece in zip(top_scores[n], top_pieces[n]):
                    if lp == float("-inf"):
                        break
                    if _compatible(text + self.piece_text[piece], ctx.fragment):
                        grown.append((pieces + [piece], score + lp))
            kth = sorted((s for s, _ in finals.values()), reverse=True)[topk - 1] if len(finals) >= topk else -math.inf
            # Extending only lowers a score: a partial already below the k-th finished word can never enter.
            partial = sorted((g for g in grown if g[1] > kth), key=lambda g: -g[1])[:width]
        ranked = sorted(finals.items(), key=lambda kv: -kv[1][0])[:topk]
        return [self._item(label, type_id, score, ctx.after_dot) for label, (score, type_id) in ranked]

    def _first_pieces(
        self, candidates: torch.Tensor, order: torch.Tensor, fragment: str, width: int
    ) -> list[tuple[list[int], float]]:
        """The first `width` pieces in `order` (best first) that fit the fragment and have a finite score.

        Only the pieces that fit are looked at (`_fitting_starts`), in their rank in `order`, so a typed
        fragment costs no scan over the whole vocabulary."""
        scores = candidates.tolist()
        if not fragment:  # every piece fits
            picked = order[:width].tolist()
        else:
            fitting = self._fitting_starts(fragment)
            rank = torch.empty_like(order)
            rank[order] = torch.arange(order.numel())
            ranks = rank[fitting].tolist() if fitting else []
            picked = [piece for _, piece in sorted(zip(ranks, fitting))][:width]
        out = []
        for piece in picked:  # -inf scores come last in `order`
            if scores[piece] == float("-inf"):
                break
            out.append(([piece], scores[piece]))
        return out

    def _fitting_starts(self, fragment: str) -> list[int]:
        """Word-start pieces whose text (without the space) extends `fragment` or is a prefix of it."""
        if self._start_index is None:
            allowed = (self.word_start & self.insertable).nonzero().flatten().tolist()
            entries = sorted((self.piece_text[i].lstrip(" "), i) for i in allowed)
            by_text: dict[str, list[int]] = {}
            for text, i in entries:
                by_text.setdefault(text, []).append(i)
            self._start_index = ([text for text, _ in entries], [i for _, i in entries], by_text)
        texts, ids, by_text = self._start_index
        out = []
        for end in range(len(fragment)):  # pieces that are a strict prefix of the fragment ("" included)
            out.extend(by_text.get(fragment[:end], ()))
        i = bisect.bisect_left(texts, fragment)
        while i < len(texts) and texts[i].startswith(fragment):
            out.append(ids[i])
            i += 1
        return out

    def _first_piece_types(self, pieces: list[int], type_log_probs: torch.Tensor | None) -> dict[int, int]:
        """piece -> the type a word starting with it gets (`CodeFill.type_of_value`, all pieces at once)."""
        if type_log_probs is None or not pieces:
            return dict.fromkeys(pieces, 0)
        types = self.model.type_of_value(torch.tensor(pieces, device=type_log_probs.device), type_log_probs)
        return dict(zip(pieces, types.tolist()))

    # -------------------------------------------------------------------------- statement mode
    def complete_statements(self, ctx: CursorContext, topk: int, words: list[dict] | None = None) -> list[dict]:
        """The rest of the statement, by beam search (after completing a typed fragment with the best word)."""
        lead, lead_types, lead_label = [], [], ""
        if ctx.fragment:
            words = words or self.complete_words(ctx, topk)
            if not words:
                return []
            lead_label = words[0]["label"]
            lead = self.tokenizer.encode_word(lead_label)
            lead_types = [TYPE_IDS[words[0]["detail"]]] * len(lead)
        hyps = self.model.complete_statement(
            ctx.values + lead,
            ctx.types + lead_types,
            beam_size=max(topk, self.beam_size),
            max_steps=self.max_statement_pieces,
            stop_ids=self.stop_ids,
            allowed=self.insertable | self._stop_mask(),
        )
        items, seen = [], set()
        for h in hyps:
            pieces = [p for p in h.tokens if p not in self.stop_ids]
            label = detokenize(([lead_label] if lead_label else []) + self.tokenizer.decode_words(pieces)).strip()
            if not label or label in seen:
                continue
            seen.add(label)
            first_type = lead_types[0] if lead_types else (h.types[0] if h.types else 0)
            items.append(self._item(label, first_type, h.score, ctx.after_dot))
            if len(items) == topk:
                break
        return items

    def _stop_mask(self) -> torch.Tensor:
        mask = torch.zeros_like(self.insertable)
        mask[self.stop_ids] = True
        return mask


# ----------------------------------------------------------------------------- saving and loading


def save_codefill(folder: str | os.PathLike, model, tokenizer: ValueTokenizer, card: dict | None = None):
    """A CodeFill model folder with its tokenizer (found again by `Completer.from_pretrained`)."""
    from zoo.hub import save_pretrained

    return save_pretrained(model, folder, card=card, extra_files={TOKENIZER_FILE: tokenizer.to_str()})


# ----------------------------------------------------------------------------- statement evaluation


@dataclass
class StatementExample:
    """Context pieces/types before a cardinal point inside a statement, and the statement's remaining tokens."""

    path: str
    values: list[int]
    types: list[int]
    reference: list[str]


def statement_examples(
    files: Sequence[EncodedFile], context: int, max_examples: int | None = None, min_words: int = 2
) -> list[StatementExample]:
    """Evaluation points for statement completion: cardinal points with >= `min_words` tokens left in
    their statement (NEWLINE excluded); evenly thinned to `max_examples` (deterministic)."""
    points = []
    for f in files:
        for i, is_cardinal in enumerate(f.cardinal):
            if not is_cardinal or i == 0:
                continue
            word = f.word_index[i]
            reference = []
            for value in f.words[word:]:
                if value in (NEWLINE_VALUE, EOS_VALUE, INDENT_VALUE, DEDENT_VALUE):
                    break
                reference.append(value)
            if len(reference) >= min_words:
                points.append((f, i, reference))
    if max_examples and len(points) > max_examples:
        step = len(points) / max_examples
        points = [points[int(k * step)] for k in range(max_examples)]
    return [
        StatementExample(f.path, f.values[max(0, i - context) : i], f.types[max(0, i - context) : i], reference)
        for f, i, reference in points
    ]


def codefill_statement_predictor(
    model, tokenizer: ValueTokenizer, beam_size: int = 5, max_steps: int = 32, rerank: bool = True
) -> Callable[[StatementExample], list[str]]:
    """A function: example -> predicted source tokens of the rest of the statement (best beam)."""
    stops = [tokenizer.id(NEWLINE_VALUE), tokenizer.id(EOS_VALUE)]

    def predict(example: StatementExample) -> list[str]:
        hyps = model.complete_statement(example.values, example.types, beam_size, max_steps, stops, rerank=rerank)
        return tokenizer.decode_words([p for p in hyps[0].tokens if p not in stops]) if hyps else []

    return predict


def ngram_statement_predictor(
    lm, tokenizer: ValueTokenizer, beam_size: int = 5, max_steps: int = 32
) -> Callable[[StatementExample], list[str]]:
    """The same for a `KneserNeyLM` trained on piece ids."""
    stops = [tokenizer.id(NEWLINE_VALUE), tokenizer.id(EOS_VALUE)]

    def predict(example: StatementExample) -> list[str]:
        hyps = lm.complete_statement(example.values, beam_size, max_steps, stops)
        return tokenizer.decode_words([p for p in hyps[0][0] if p not in stops]) if hyps else []

    return predict


def evaluate_statements(
    predict: Callable[[StatementExample], list[str]], examples: Sequence[StatementExample], progress: bool = False
) -> dict[str, float]:
    """ROUGE-L and exact match at n = 2..8 source tokens over the examples."""
    from tqdm.auto import tqdm

    metrics = StatementMetrics()
    for example in tqdm(examples, desc="statements", disable=not progress):
        metrics.update(predict(example), example.reference)
    return metrics.compute()
