"""Caption metrics: BLEU-4, CIDEr-D and ROUGE-L through pycocoevalcap's scorers, a nearest-neighbour caption
baseline, and slot accuracy (digit, direction) on the embedded moving-digits captions.

The scorers are pycocoevalcap's own (`bleu.bleu.Bleu`, `cider.cider.Cider`, `rouge.rouge.Rouge`), as the
SwinBERT paper (Lin et al., CVPR 2022) reports them. pycocoevalcap's `Cider` is CIDEr-D: clipped n-gram
counts, a Gaussian length penalty with sigma = 6, times 10, with document frequencies taken from the
references of the evaluated set (so a set of one clip scores 0: every n-gram has idf 0). The Java PTB
tokenizer is replaced by `caption_words` (lowercase, punctuation dropped), the tokenizer the model uses.

Embedded-task caption template (domains/video/moving_digits.py `caption_for`; one clause per digit, joined by
" and "): "the digit <d> moves <direction> <speed>", direction one of up, down, left, right, "up and to the
left" (and the other diagonals), speed one of slowly, steadily, quickly, e.g.
"the digit 3 moves up and to the left quickly and the digit 7 moves down slowly".
`parse_motion_slots` reads it back and also accepts "digits 3 and 7 move left", "digit 3 moves ...",
"up-left", "upper left", "up left", "upward(s)", "to the left", "fast", "slow", a missing speed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

# pycocoevalcap imports numpy and nothing Java-based for these three scorers.
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from domains.video.captions import caption_words, normalize_caption
from zoo.errors import DataError

#: the parser's canonical labels.
DIRECTIONS = ("up", "down", "left", "right", "up-left", "up-right", "down-left", "down-right")
SPEEDS = ("slow", "steady", "fast")


def caption_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4, CIDEr-D and ROUGE-L of one predicted caption per clip against its references.

    predictions: clip id -> caption; references: clip id -> its captions (>= 1). Both name the same clips.
    Returns {"bleu1".."bleu4", "cider_d", "rouge_l"} as pycocoevalcap computes them (fractions, CIDEr-D x10).
    """
    res, gts = _coco_inputs(predictions, references)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    scores = {f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)}
    return {**scores, "cider_d": float(cider), "rouge_l": float(rouge)}


def _coco_inputs(predictions, references) -> tuple[dict, dict]:
    if set(predictions) != set(references):
        missing = sorted(set(references) - set(predictions))[:3]
        extra = sorted(set(predictions) - set(references))[:3]
        raise DataError(
            f"caption metrics: clips without a prediction {missing}, predictions without references {extra}"
        )
    if not predictions:
        raise DataError("caption metrics: no clips to score")
    res, gts = {}, {}
    for key in sorted(predictions):
        refs = [normalize_caption(r) for r in references[key]]
        if not refs or not any(refs):
            raise DataError(f"caption metrics: clip {key!r} has no non-empty reference caption")
        res[key] = [normalize_caption(predictions[key])]
        gts[key] = refs
    return res, gts


# ---------------------------------------------------------------------------------------------- baseline


def mean_frame_features(frames: torch.Tensor) -> torch.Tensor:
    """Clips (B, T, C, H, W) -> their mean frame, flattened (B, C*H*W): the baseline's clip descriptor."""
    if frames.dim() != 5:
        raise DataError(f"mean_frame_features expects clips (B, T, C, H, W); got shape {tuple(frames.shape)}")
    return frames.float().mean(1).flatten(1)


def nearest_neighbour_captions(
    train_features: torch.Tensor, train_captions: Sequence[str], query_features: torch.Tensor, chunk: int = 1024
) -> list[str]:
    """For each query clip, the caption of the training clip with the nearest (Euclidean) features."""
    if len(train_captions) != len(train_features):
        raise DataError(f"{len(train_features)} training clips but {len(train_captions)} captions")
    if len(train_features) == 0:
        raise DataError("nearest-neighbour captions need at least one training clip")
    nearest = []
    for start in range(0, len(query_features), chunk):  # chunks bound the (queries x train) distance matrix
        distances = torch.cdist(query_features[start : start + chunk].float(), train_features.float())
        nearest += distances.argmin(1).tolist()
    return [train_captions[i] for i in nearest]


# ---------------------------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class Slot:
    digit: int
    direction: str  # one of DIRECTIONS ("" when the caption names none)
    speed: str | None = None  # one of SPEEDS


_VERTICAL = {"up": "up", "upward": "up", "upwards": "up", "upper": "up", "down": "down", "downward": "down"}
_VERTICAL |= {"downwards": "down", "lower": "down"}
_HORIZONTAL = {"left": "left", "leftward": "left", "leftwards": "left", "right": "right", "rightward": "right"}
_HORIZONTAL |= {"rightwards": "right"}
_SPEED_WORDS = {"slowly": "slow", "slow": "slow", "steadily": "steady", "steady": "steady"}
_SPEED_WORDS |= {"quickly": "fast", "fast": "fast", "quick": "fast"}
_FILLER = {"and", "to", "the", "towards", "toward"}


def _read_motion(words: list[str], i: int) -> tuple[str | None, str | None, int]:
    """Direction and speed in words[i:], until the next 'digit(s)' or an unknown word; returns the next index."""
    vertical = horizontal = speed = None
    while i < len(words) and words[i] not in ("digit", "digits"):
        w = words[i]
        if w in _VERTICAL and vertical is None:
            vertical = _VERTICAL[w]
        elif w in _HORIZONTAL and horizontal is None:
            horizontal = _HORIZONTAL[w]
        elif w in _SPEED_WORDS and speed is None:
            speed = _SPEED_WORDS[w]
        elif w not in _FILLER:
            break
        i += 1
    direction = "-".join(p for p in (vertical, horizontal) if p) or None
    return direction, speed, i


def parse_motion_slots(text: str) -> list[Slot]:
    """Slots of a caption in (a loose form of) the template; unparsable parts are ignored.

    "digit 3 moves up and to the left quickly" -> [Slot(3, "up-left", "fast")];
    "digits 3 and 7 move right" -> [Slot(3, "right"), Slot(7, "right")]. A digit without a readable
    direction gets direction "" (it still counts for digit accuracy).
    """
    # "up-left" -> "up left"; "3," -> "3"
    words = caption_words(text.replace("-", " "))
    slots: list[Slot] = []
    i = 0
    while i < len(words):
        if words[i] not in ("digit", "digits"):
            i += 1
            continue
        i += 1
        digits = []
        while i < len(words) and (words[i].isdigit() or words[i] == "and"):
            if words[i].isdigit() and len(words[i]) == 1:
                digits.append(int(words[i]))
            i += 1
        if i < len(words) and words[i] in ("moves", "move", "moving", "goes", "go", "going"):
            i += 1
        direction, speed, i = _read_motion(words, i)
        slots += [Slot(d, direction or "", speed) for d in digits]
    return slots


def slot_accuracy(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Digit, direction and (digit, direction) accuracy of predicted captions against template references.

    Per clip the predicted and reference slots are compared as multisets: matches / max(#reference, #predicted)
    (extra predicted digits cost as much as missing ones), summed over clips before dividing.
    "exact" is the fraction of clips whose (digit, direction) multisets are equal.
    """
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predicted captions for {len(references)} references")
    matched = Counter()
    total = exact = 0
    for predicted, reference in zip(predictions, references):
        ref, pred = parse_motion_slots(reference), parse_motion_slots(predicted)
        if not ref:
            raise DataError(f"reference caption {reference!r} names no digit in the template 'digit <d> moves ...'")
        total += max(len(ref), len(pred))
        for name, key in (("digit", lambda s: s.digit), ("direction", lambda s: s.direction)):
            matched[name] += sum((Counter(map(key, ref)) & Counter(map(key, pred))).values())
        pairs_ref = Counter((s.digit, s.direction) for s in ref)
        pairs_pred = Counter((s.digit, s.direction) for s in pred)
        matched["slot"] += sum((pairs_ref & pairs_pred).values())
        exact += pairs_ref == pairs_pred
    return {
        "digit": matched["digit"] / total,
        "direction": matched["direction"] / total,
        "slot": matched["slot"] / total,
        "exact": exact / len(references),
    }
