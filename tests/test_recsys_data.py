"""Recsys data: item sentences and ids on hand examples, the tokenizer's JSON round trip, whole-word MLM
masks, MovieLens-100k, readers, leave-one-out with its tie-breaks, zero-shot splits, and bad inputs."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from domains.recsys.movielens import (
    Interactions,
    leave_one_out,
    load_movielens_100k,
    most_popular_items,
    parse_history,
    read_history_jsonl,
    read_inter_file,
    read_item_file,
    read_item_jsonl,
    read_items,
    read_user_data,
    zero_shot_split,
)
from domains.recsys.sentences import (
    ItemSentenceEncoder,
    RecformerBatcher,
    SentenceConfig,
    flatten_item,
    item_sentence,
    mask_whole_words,
)
from domains.recsys.tokenizer import SPECIAL_TOKENS, ItemTokenizer
from zoo.errors import DataError, ZooError

BAD = Path(__file__).parent / "bad_inputs" / "recsys"
WORDS = ["title", "toy", "story", "year", "1995", "genre", "comedy", "heat", "crime", "fargo"]


@pytest.fixture
def word_tokenizer() -> ItemTokenizer:
    """Whitespace words with hand-picked ids: <s>0 <pad>1 </s>2 <unk>3 <mask>4, then title=5, toy=6, ..."""
    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return ItemTokenizer(tokenizer)


# ----------------------------------------------------------------------------- sentences


def test_flatten_keeps_order_skips_empty_and_truncates_attributes():
    item = {"title": "Toy Story", "brand": "", "year": "1995", "genre": "Comedy", "extra": "x"}
    assert flatten_item(item, 3) == [("title", "Toy Story"), ("year", "1995"), ("genre", "Comedy")]
    assert item_sentence(item, 2) == "title Toy Story year 1995"


def test_item_encoding_by_hand(word_tokenizer):
    encoder = ItemSentenceEncoder(word_tokenizer, SentenceConfig(max_attr_num=2, max_attr_length=3))
    item = encoder.encode_item({"title": "toy story comedy", "year": "1995", "genre": "comedy"})
    # 'title toy story comedy' is cut to 3 tokens; genre is the third attribute, beyond max_attr_num
    assert item.input_ids == (5, 6, 7, 8, 9)
    assert item.token_type_ids == (1, 2, 2, 1, 2)


def test_history_encoding_and_padding_by_hand(word_tokenizer):
    encoder = ItemSentenceEncoder(word_tokenizer, SentenceConfig(max_items=2, max_tokens=8))
    toy = encoder.encode_item({"title": "toy"})  # 5 6
    heat = encoder.encode_item({"title": "heat", "year": "1995"})  # 5 12 8 9
    fargo = encoder.encode_item({"title": "fargo"})  # 5 14
    batch = encoder.collate([[toy, heat, fargo], [heat]])
    # most recent first; at most 2 items (toy, the oldest, is dropped); <s> first; cut to 8 tokens
    assert batch["input_ids"].tolist() == [[0, 5, 14, 5, 12, 8, 9], [0, 5, 12, 8, 9, 1, 1]]
    assert batch["token_type_ids"].tolist() == [[0, 1, 2, 1, 2, 1, 2], [0, 1, 2, 1, 2, 3, 3]]
    assert batch["item_position_ids"].tolist() == [[0, 1, 1, 2, 2, 2, 2], [0, 1, 1, 1, 1, 2, 2]]
    assert batch["attention_mask"].tolist() == [[1] * 7, [1] * 5 + [0, 0]]
    assert batch["global_attention_mask"].tolist() == [[1] + [0] * 6, [1] + [0] * 6]
    cut = ItemSentenceEncoder(word_tokenizer, SentenceConfig(max_items=3, max_tokens=4)).collate([[toy, heat, fargo]])
    assert cut["input_ids"].tolist() == [[0, 5, 14, 5]]
    assert SentenceConfig(max_items=2, max_tokens=8).model_kwargs(word_tokenizer) == {
        "vocab_size": 15,
        "pad_token_id": 1,
        "max_items": 3,
        "max_positions": 10,
    }


def test_batcher_targets_and_item_batches(word_tokenizer):
    attrs = [{"title": "toy"}, {"title": "heat"}, {"title": "fargo"}]
    batcher = RecformerBatcher.from_catalogue(word_tokenizer, attrs)
    batch, targets = batcher.evaluation([([0, 1], 2), ([2], 0)])
    assert targets.tolist() == [2, 0] and batch["input_ids"].tolist() == [[0, 5, 12, 5, 6], [0, 5, 14, 1, 1]]
    rng = random.Random(0)
    for _ in range(20):
        batch, targets = batcher.finetune([[0, 1, 2]], rng)
        history_len = int(batch["attention_mask"].sum()) // 2  # each item is 2 tokens after <s>
        assert targets.item() == [0, 1, 2][history_len]  # the target is the item right after the history
    chunks = list(batcher.item_batches(batch_size=2))
    assert [c["input_ids"].tolist() for c in chunks] == [[[0, 5, 6], [0, 5, 12]], [[0, 5, 14]]]


def test_whole_word_masking(word_tokenizer):
    tokenizer = ItemTokenizer.train(["toy story heat fargo comedy crime"] * 5, vocab_size=280)
    ids, starts = tokenizer.tokenize_words("toy story")
    assert starts[0] and len(ids) == len(starts)
    encoder = ItemSentenceEncoder(tokenizer)
    items = [encoder.encode_item({"title": "toy story", "genre": "crime comedy heat"}) for _ in range(3)]
    batch = encoder.collate([items, items[:1]], keep_word_starts=True)
    real = batch["attention_mask"].bool()
    masked, labels = mask_whole_words(batch["input_ids"], batch["word_starts"], real, tokenizer, random.Random(0), 0.3)
    picked = labels != -100
    assert picked.any(1).all()  # at least one token per row
    assert torch.equal(labels[picked], batch["input_ids"][picked])
    assert not picked[~real].any() and not picked[:, 0].any()  # never padding or <s>
    assert torch.equal(masked[~picked], batch["input_ids"][~picked])
    for row in range(2):  # whole words: a picked continuation token's word start is picked too
        for pos in range(1, int(real[row].sum())):
            if picked[row, pos] and not batch["word_starts"][row, pos]:
                assert picked[row, pos - 1]
        assert int(picked[row].sum()) <= max(1, round(int(real[row].sum()) * 0.3))


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_json_round_trip_is_exact(tmp_path):
    data = load_movielens_100k()
    tokenizer = ItemTokenizer.train(data.catalogue.texts(), vocab_size=1000)
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = ItemTokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.to_json() == tokenizer.to_json() == (tmp_path / "tokenizer.json").read_text()
    assert (loaded.bos_id, loaded.pad_id, loaded.eos_id, loaded.unk_id, loaded.mask_id) == (0, 1, 2, 3, 4)
    text = "Misérables, Les — Ça tourne (2031) 🎬"  # never seen: byte-level BPE has no unknown token
    assert loaded.tokenize(text) == tokenizer.tokenize(text) and tokenizer.unk_id not in tokenizer.tokenize(text)
    assert tokenizer.decode(tokenizer.tokenize(text)) == text
    with pytest.raises(ZooError, match="not a tokenizers JSON"):
        ItemTokenizer.from_json("{}", "broken.json")


# ----------------------------------------------------------------------------- MovieLens and readers


def test_movielens_100k_embedded():
    data = load_movielens_100k()
    assert (len(data.users), len(data.catalogue), sum(map(len, data.histories))) == (943, 1682, 100_000)
    assert data.catalogue.attributes[0] == {
        "title": "Toy Story",
        "year": "1995",
        "genre": "Animation Children's Comedy",
    }
    assert data.catalogue.display_name(0) == "Toy Story (1995)"
    cat = data.catalogue
    assert parse_history("Toy Story (1995); heat (1995)", cat) == [0, cat.index["273"]]
    assert cat.find("273") == cat.index["273"]  # an item id works too
    with pytest.raises(DataError, match="did you mean Toy Story"):
        cat.find("Toy Stroy (1995)")
    split = leave_one_out(data)
    assert len(split.test) == 943  # every ML-100k user has >= 20 ratings


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ties_are_broken_by_item_file_order_whatever_the_inter_row_order(tmp_path, caplog):
    items = read_item_file(write(tmp_path / "x.item", "item_id:token\ttitle:token_seq\nb\tB\na\tA\nc\tC\n"))
    rows = ["u1\ta\t5", "u1\tc\t1", "u1\tb\t5", "u2\tc\t3"]
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    with caplog.at_level(logging.WARNING):
        forward = read_inter_file(write(tmp_path / "f.inter", header + "\n".join(rows) + "\n"), items)
        backward = read_inter_file(write(tmp_path / "r.inter", header + "\n".join(rows[::-1]) + "\n"), items)
    # u1: c at t=1, then a and b tie at t=5: b comes first because it comes first in x.item
    assert forward.histories == backward.histories == [[2, 0, 1], [2]]
    assert forward.users == ["u1", "u2"]
    assert "1 interactions share their timestamp" in caplog.text
    no_time = read_inter_file(write(tmp_path / "n.inter", "user_id:token\titem_id:token\nu1\tc\nu1\tb\n"), items)
    assert no_time.histories == [[2, 0]]  # file order without a timestamp column


def test_leave_one_out_by_hand():
    data = Interactions(None, ["u1", "u2", "u3"], [[0, 1, 2, 3], [4, 5], [6, 7, 8]])
    split = leave_one_out(data)
    assert split.train == [[0, 1], [4, 5], [6]]
    assert split.valid == [([0, 1], 2), ([6], 7)]
    assert split.test == [([0, 1, 2], 3), ([6, 7], 8)]
    assert split.test_users == [0, 2]


def test_zero_shot_split_removes_held_out_items_from_training():
    data = most_popular_items(load_movielens_100k(max_users=200), 200)
    split = leave_one_out(data)
    zero = zero_shot_split(split, len(data.catalogue), fraction=0.2, seed=0)
    held = set(zero.held_out)
    assert len(held) == 40
    assert not any(i in held for seq in zero.train for i in seq)
    assert not any(t in held or held & set(h) for h, t in zero.valid)
    assert zero.test and all(t in held and not held & set(h) for h, t in zero.test)
    assert zero_shot_split(split, len(data.catalogue), fraction=0.2, seed=0).held_out == zero.held_out


def test_jsonl_readers_and_new_items(tmp_path):
    items = write(tmp_path / "items.jsonl", '{"item": "i1", "title": "Heat", "tags": ["crime", "1995"]}\n'
                  '{"item": 2, "title": "Fargo", "year": 1996}\n')  # fmt: skip
    histories = write(tmp_path / "h.jsonl", '{"user": "a", "items": ["i1", "2"]}\n\n{"user": "b", "items": [2]}\n')
    data = read_user_data(histories, items)
    assert data.catalogue.attributes[0] == {"title": "Heat", "tags": "crime 1995"}
    assert data.histories == [[0, 1], [1]] and data.users == ["a", "b"]
    saved = read_item_jsonl(write(tmp_path / "saved.jsonl", load_movielens_100k().catalogue.to_jsonl()))
    original = load_movielens_100k().catalogue
    assert (saved.item_ids, saved.attributes) == (original.item_ids, original.attributes)  # exact round trip
    new = read_items(write(tmp_path / "new.item", "item_id:token\ttitle:token_seq\nn1\tCasablanca\n"))
    extended = data.catalogue.extend(new)
    assert len(extended) == 3 and extended.find("Casablanca") == 2
    with pytest.raises(DataError, match="already in"):
        extended.extend(new)


# ----------------------------------------------------------------------------- bad inputs


def read_bad(path: Path):
    """Read one file of tests/bad_inputs/recsys as the README says."""
    if path.name.endswith(".items.jsonl"):
        return read_item_jsonl(path)
    if path.suffix == ".jsonl":
        return read_history_jsonl(path, read_item_jsonl(BAD / "_catalogue.items.jsonl"))
    if path.suffix == ".inter":
        return read_inter_file(path, read_item_file(BAD / "_catalogue.item"))
    return read_item_file(path)


READ = (".inter", ".item", ".jsonl")  # the readers' files; the others are command-line cases (README table)
BAD_FILES = sorted(p for p in BAD.iterdir() if p.suffix in READ and not p.name.startswith("_"))


def test_every_bad_file_is_described():
    readme = (BAD / "README.md").read_text()
    assert BAD_FILES and all(f"`{p.name}`" in readme for p in BAD.iterdir() if p.suffix != ".md")


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.name)
def test_bad_input_is_one_line_with_file_and_line(path):
    with pytest.raises(DataError) as err:
        read_bad(path)
    message = str(err.value)
    assert "\n" not in message and f"{path.name}:" in message
    expected_line = {"unknown_item.inter": 3, "duplicate_interaction.inter": 4, "bad_timestamp.inter": 3,
                     "missing_text.item": 3, "no_item_id.item": 1, "duplicate_item.item": 3, "untyped_header.item": 1,
                     "empty_history.jsonl": 2, "unknown_item.jsonl": 1, "broken_json.jsonl": 2,
                     "missing_text.items.jsonl": 2, "no_item_id.items.jsonl": 1}[path.name]  # fmt: skip
    assert f"{path.name}:{expected_line}:" in message


def test_companion_catalogues_are_valid():
    assert len(read_item_file(BAD / "_catalogue.item")) == 3
    assert json.loads((BAD / "_catalogue.items.jsonl").read_text().splitlines()[0])["item"] == "1"
    assert len(read_item_jsonl(BAD / "_catalogue.items.jsonl")) == 2
