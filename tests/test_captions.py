"""Caption tokenizer (vocabulary, encode/decode, exact JSON round trip) and caption file readers (bad input)."""

from __future__ import annotations

import json

import pytest

from domains.video.captions import (
    CLS,
    MASK,
    PAD,
    SEP,
    SPECIAL_TOKENS,
    UNK,
    CaptionTokenizer,
    caption_words,
    read_captions,
)
from zoo.errors import ZooError
from zoo.models import swinbert

CAPTIONS = ["A man is singing.", "a man plays the guitar", "The dog runs, the dog jumps!", "a man's dog"]


def test_special_ids_are_the_ones_the_model_decodes_with():
    assert SPECIAL_TOKENS == ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
    assert (PAD, CLS, SEP, MASK, UNK) == (
        swinbert.PAD_ID,
        swinbert.CLS_ID,
        swinbert.SEP_ID,
        swinbert.MASK_ID,
        swinbert.UNK_ID,
    )
    assert len(SPECIAL_TOKENS) == swinbert.FIRST_WORD_ID


def test_words_are_lowercase_without_punctuation():
    assert caption_words("A man's dog, RUNNING! (fast)") == ["a", "man's", "dog", "running", "fast"]


def test_vocabulary_encode_decode():
    tok = CaptionTokenizer.build(CAPTIONS)
    # By falling count, ties alphabetical: a(3) man(2) dog(3) the(3) ... -> a, dog, the, man, ...
    assert tok.words[:9] == [*SPECIAL_TOKENS, "a", "dog", "the", "man"]
    ids = tok.encode("The dog sings!")
    assert ids[0] == CLS and ids[-1] == SEP and ids[3] == UNK
    assert tok.decode(ids) == "the dog [UNK]"
    assert tok.decode([CLS, tok.index["man"], PAD, MASK, SEP, tok.index["dog"]]) == "man"
    assert tok.encode("a man plays the guitar", max_len=4) == [CLS, tok.index["a"], tok.index["man"], SEP]
    batch = tok.encode_batch(["a man", "the dog runs"])
    assert batch.tolist()[0] == [CLS, tok.index["a"], tok.index["man"], SEP, PAD]
    assert len(CaptionTokenizer.build(CAPTIONS, min_count=2)) == 5 + 4
    assert CaptionTokenizer.build(CAPTIONS, max_words=2).words[5:] == ["a", "dog"]


def test_json_round_trip_is_exact(tmp_path):
    tok = CaptionTokenizer.build(CAPTIONS)
    path = tok.save(tmp_path / "tokenizer.json")
    again = CaptionTokenizer.load(path)
    assert again == tok and again.words == tok.words
    assert [again.encode(c) for c in CAPTIONS] == [tok.encode(c) for c in CAPTIONS]
    again.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_bad_tokenizer_files(tmp_path):
    (tmp_path / "broken.json").write_text('{"format": "longzoo-caption-tokenizer",\n "words": [')
    with pytest.raises(ZooError, match=r"broken.json:2: not valid JSON"):
        CaptionTokenizer.load(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text(json.dumps({"vocab": ["a"]}))
    with pytest.raises(ZooError, match="not a caption tokenizer"):
        CaptionTokenizer.load(tmp_path / "other.json")
    (tmp_path / "nospecial.json").write_text(json.dumps({"format": "longzoo-caption-tokenizer", "words": ["a"]}))
    with pytest.raises(ZooError, match="must start with"):
        CaptionTokenizer.load(tmp_path / "nospecial.json")


def msrvtt(tmp_path, sentences, name="captions.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"info": {}, "videos": [], "sentences": sentences}))
    return path


def test_read_msrvtt_json_and_csv(tmp_path):
    path = msrvtt(
        tmp_path,
        [
            {"video_id": "video0", "caption": "a man is singing", "sen_id": 0},
            {"video_id": "video1", "caption": " a dog runs ", "sen_id": 1},
            {"video_id": "video0", "caption": "someone sings", "sen_id": 2},
        ],
    )
    table = read_captions(path, videos={"video0", "video1"})
    assert table.by_video() == {"video0": ["a man is singing", "someone sings"], "video1": ["a dog runs"]}
    assert table.captions[1].where.endswith("captions.json:sentences[1]")
    csv_path = tmp_path / "captions.csv"
    csv_path.write_text('video,caption\nclip_a,"a man, singing"\n\nclip_b,a dog runs\n')
    table = read_captions(csv_path, videos=["clip_a", "clip_b"])
    assert [(c.video_id, c.caption, c.where.rsplit(":", 1)[1]) for c in table.captions] == [
        ("clip_a", "a man, singing", "2"),
        ("clip_b", "a dog runs", "4"),
    ]


def test_bad_caption_files_name_the_place_and_the_fix(tmp_path):
    missing = msrvtt(tmp_path, [{"video_id": "video0", "caption": "a"}, {"video_id": "video9", "caption": "b"}])
    with pytest.raises(ZooError, match=r"captions.json:sentences\[1\]: caption names video 'video9'.*on_invalid=skip"):
        read_captions(missing, videos={"video0"})
    table = read_captions(missing, videos={"video0"}, on_invalid="skip")
    assert [c.video_id for c in table.captions] == ["video0"] and "video9" in table.rejected[0][1]

    empty = msrvtt(tmp_path, [{"video_id": "video0", "caption": " ?! "}], "empty.json")
    with pytest.raises(ZooError, match=r"empty.json:sentences\[0\]: empty caption for video 'video0'"):
        read_captions(empty)

    broken = tmp_path / "broken.json"
    broken.write_text('{"sentences": [\n {"video_id": "video0", "caption": "a"},\n {"video_id": }\n]}')
    with pytest.raises(ZooError, match=r"broken.json:3: malformed JSON"):
        read_captions(broken)
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ZooError, match="MSR-VTT style"):
        read_captions(tmp_path / "list.json")

    rows = tmp_path / "rows.csv"
    rows.write_text("video,caption\nclip_a,a man sings\nclip_b,a dog,runs\n")
    with pytest.raises(ZooError, match=r"rows.csv:3: 3 fields where the header has 2"):
        read_captions(rows)
    quoting = tmp_path / "quoting.csv"
    quoting.write_text('video,caption\nclip_a,"a man sings\n')
    with pytest.raises(ZooError, match=r"quoting.csv:\d+: malformed CSV"):
        read_captions(quoting)
    header = tmp_path / "header.csv"
    header.write_text("clip,text\nclip_a,a man sings\n")
    with pytest.raises(ZooError, match=r"header.csv:1: the header needs `video`"):
        read_captions(header)
    blank = tmp_path / "blank.csv"
    blank.write_text("video,caption\nclip_a,\n")
    with pytest.raises(ZooError, match=r"blank.csv:2: empty caption"):
        read_captions(blank)
    with pytest.raises(ZooError, match="no valid captions"):
        read_captions(blank, on_invalid="skip")
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(ZooError, match=r"\.json .* or \.csv"):
        read_captions(tmp_path / "c.txt")


def test_every_error_is_one_line(tmp_path):
    bad = msrvtt(tmp_path, [{"video_id": "v", "caption": ""}])
    with pytest.raises(ZooError) as err:
        read_captions(bad)
    assert "\n" not in str(err.value)
