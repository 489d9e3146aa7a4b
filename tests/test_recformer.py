"""Recformer: Longformer attention vs a dense reference, the losses by hand, zero-shot items, two-stage
fine-tuning, save -> load, the official-checkpoint converter, and a short training run on ML-100k."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from domains.recsys.metrics import evaluate, popularity_baseline, random_expectation
from domains.recsys.movielens import leave_one_out, load_movielens_100k, most_popular_items
from domains.recsys.sentences import RecformerBatcher, SentenceConfig
from domains.recsys.tokenizer import ItemTokenizer
from zoo import ZooError, create_model, from_pretrained
from zoo.convert import get_converter
from zoo.hub import save_pretrained
from zoo.layers.longformer import LongformerSelfAttention
from zoo.models.recformer import TwoStageFinetuning, contrastive_loss

CATALOGUE = [
    {"title": "Toy Story", "year": "1995", "genre": "Animation Children's Comedy"},
    {"title": "Heat", "year": "1995", "genre": "Action Crime Thriller"},
    {"title": "Fargo", "year": "1996", "genre": "Crime Drama Thriller"},
    {"title": "Star Wars", "year": "1977", "genre": "Action Adventure Sci-Fi War"},
    {"title": "Babe", "year": "1995", "genre": "Children's Comedy Drama"},
]


@pytest.fixture(scope="module")
def batcher() -> RecformerBatcher:
    texts = [t for a in CATALOGUE for kv in a.items() for t in kv] * 3
    return RecformerBatcher.from_catalogue(ItemTokenizer.train(texts, vocab_size=300), CATALOGUE, SentenceConfig())


def small_model(batcher: RecformerBatcher, **kw):
    torch.manual_seed(0)
    kwargs = batcher.encoder.config.model_kwargs(batcher.encoder.tokenizer)
    return create_model("test_recformer", **{**kwargs, "max_positions": 258, **kw}).eval()


# ----------------------------------------------------------------------------- attention


def dense_longformer(m: LongformerSelfAttention, x, mask, is_global):
    """Longformer attention written out per query (the semantics of transformers' LongformerSelfAttention)."""
    batch, length, dim = x.shape
    heads, head_dim, half = m.num_heads, dim // m.num_heads, m.half
    split = lambda t: t.view(length, heads, head_dim).transpose(0, 1)
    out = torch.zeros(batch, heads, length, head_dim, dtype=x.dtype)
    for b in range(batch):
        q, k, v = split(m.query(x[b]) / head_dim**0.5), split(m.key(x[b])), split(m.value(x[b]))
        qg, kg, vg = split(m.query_global(x[b]) / head_dim**0.5), split(m.key_global(x[b])), split(m.value_global(x[b]))
        for i in range(length):
            if not mask[b, i]:
                continue
            if is_global[b, i]:
                keys = [j for j in range(length) if mask[b, j]]
                p = torch.softmax((qg[:, i, None, :] * kg[:, keys]).sum(-1), -1)
                out[b, :, i] = (p[..., None] * vg[:, keys]).sum(1)
                continue
            keys = [j for j in range(length) if mask[b, j] and (is_global[b, j] or abs(i - j) <= half)]
            p = torch.softmax((q[:, i, None, :] * k[:, keys]).sum(-1), -1)
            out[b, :, i] = (p[..., None] * v[:, keys]).sum(1)
    return m.proj(out.transpose(1, 2).reshape(batch, length, dim))


@pytest.mark.parametrize("length", [1, 3, 7, 12, 25])
def test_longformer_attention_equals_dense_reference(length):
    torch.manual_seed(length)
    m = LongformerSelfAttention(8, 2, window=4).double().eval()
    x = torch.randn(3, length, 8, dtype=torch.double)
    mask = torch.ones(3, length, dtype=torch.bool)
    mask[1, length // 2 + 1 :] = False
    is_global = torch.zeros_like(mask)
    is_global[:, 0] = True
    is_global[2, length // 2] = True  # a second global token, in another row only
    is_global &= mask
    torch.testing.assert_close(m(x, mask, is_global), dense_longformer(m, x, mask, is_global), rtol=0, atol=1e-12)
    no_global = torch.zeros_like(mask)
    torch.testing.assert_close(m(x, mask, no_global), dense_longformer(m, x, mask, no_global), rtol=0, atol=1e-12)


def test_padding_leaves_real_outputs_unchanged(batcher):
    model = small_model(batcher)
    alone = model.encode(batcher.histories([[0, 1]]))
    padded = model.encode(batcher.histories([[0, 1], [2, 3, 4, 0, 1, 2, 3]]))[:1]
    torch.testing.assert_close(padded, alone, rtol=0, atol=1e-5)


def test_full_attention_baseline_has_equal_width_and_no_global_projections(batcher):
    model = small_model(batcher, attention="full")
    assert not any("global" in name for name, _ in model.named_parameters())
    assert model.encode(batcher.histories([[0, 1], [2]])).shape == (2, model.num_features)


# ----------------------------------------------------------------------------- losses


def test_contrastive_loss_equals_hand_computed_value():
    queries = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.double)
    keys = torch.tensor([[3.0, 0.0], [1.0, 1.0]], dtype=torch.double)
    # cosines: q0.k0 = 1, q0.k1 = 1/sqrt2, q1.k0 = 0, q1.k1 = 1/sqrt2; divided by 0.05; targets on the diagonal
    s = 1 / math.sqrt(2) / 0.05
    row0 = -(20.0 - math.log(math.exp(20.0) + math.exp(s)))
    row1 = -(s - math.log(math.exp(0.0) + math.exp(s)))
    assert contrastive_loss(queries, keys, 0.05).item() == pytest.approx((row0 + row1) / 2, rel=1e-9)


def test_pretraining_loss_adds_a_tenth_of_mlm(batcher):
    model = small_model(batcher, mlm_head=True)
    history, item = batcher.pretraining([[0, 1, 2], [3, 4], [2, 0, 4, 1]], random.Random(0))
    assert (history["mlm_labels"] != -100).any() and (item["mlm_labels"] != -100).any()
    out = model.pretraining_loss(history, item)
    assert out["loss"].item() == pytest.approx(out["contrastive"].item() + 0.1 * 2 * out["mlm"].item(), rel=1e-5)
    out["loss"].backward()
    assert model.mlm.decoder.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- zero-shot, two stages


def test_item_added_as_text_only_is_scored_without_retraining(batcher):
    model = small_model(batcher)
    with torch.no_grad():  # at init (std 0.02) every item lands near the same point; spread the weights out
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    model.refresh_item_table(batcher.item_batches(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new_items = [dict(CATALOGUE[1]), {"title": "Casablanca", "year": "1942", "genre": "Drama Romance War"}]
    extended = batcher.extended(new_items)
    new = model.encode_items(extended.item_batches(8, indices=[5, 6]))
    history = batcher.histories([[0, 2], [3]])
    scores = model.score(model.encode(history), torch.cat([model.item_table, new]))
    assert scores.shape == (2, 7) and torch.isfinite(scores).all()
    torch.testing.assert_close(scores[:, 5], scores[:, 1], rtol=0, atol=1e-5)  # same text, same score
    assert not torch.allclose(scores[:, 6], scores[:, 1])
    top_scores, top_items = model.recommend(history, topk=3, items=torch.cat([model.item_table, new]))
    assert top_items.shape == (2, 3) and (top_scores[:, :-1] >= top_scores[:, 1:]).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing was retrained


def test_two_stage_schedule():
    schedule = TwoStageFinetuning(patience_stage1=2, patience_stage2=1)
    assert schedule.refresh_due()
    assert [schedule.update(m) for m in (0.1, 0.2, 0.15, 0.19)] == ["improved", "improved", "continue", "next_stage"]
    assert not schedule.refresh_due() and schedule.best == 0.2
    assert [schedule.update(m) for m in (0.25, 0.2)] == ["improved", "stop"]
    copy = TwoStageFinetuning(patience_stage1=2, patience_stage2=1)
    copy.load_state_dict(schedule.state_dict())
    assert copy == schedule


def test_stage_one_refreshes_the_frozen_table_and_stage_two_keeps_it(batcher):
    model = small_model(batcher).train()
    table = model.refresh_item_table(batcher.item_batches(3)).clone()
    assert "item_table" not in dict(model.named_parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    batch, targets = batcher.finetune([[0, 1, 2], [3, 4, 1]], random.Random(0))
    model.finetune_loss(batch, targets).backward()
    optimizer.step()
    assert torch.equal(model.item_table, table)  # frozen within an epoch
    assert not torch.allclose(model.refresh_item_table(batcher.item_batches(3)), table)  # next epoch: re-encoded
    with pytest.raises(ZooError, match="item table is empty"):
        small_model(batcher).finetune_loss(batch, targets)


def test_save_load_keeps_weights_table_and_mlm_head(batcher, tmp_path):
    model = small_model(batcher, mlm_head=True)
    model.refresh_item_table(batcher.item_batches(4))
    save_pretrained(model, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m")
    history = batcher.histories([[0, 1], [4]])
    torch.testing.assert_close(loaded.score(loaded.encode(history)), model.score(model.encode(history)), rtol=0, atol=0)
    torch.testing.assert_close(loaded.item_table, model.item_table, rtol=0, atol=0)
    assert loaded.mlm is not None


# ----------------------------------------------------------------------------- official checkpoint

TINY = dict(vocab=60, dim=16, heads=2, layers=2, inter=32, positions=40, types=4, items=6, window=4, num_items=7)


def official_release(seed: int = 0) -> dict[str, torch.Tensor]:
    """A RecformerForSeqRec state dict with the release's key names and tiny shapes, randomly initialised."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.3
    c = TINY
    d, sd = c["dim"], {}
    emb = "longformer.embeddings."
    sd[emb + "word_embeddings.weight"] = r(c["vocab"], d)
    sd[emb + "position_embeddings.weight"] = r(c["positions"], d)
    sd[emb + "token_type_embeddings.weight"] = r(c["types"], d)
    sd[emb + "item_position_embeddings.weight"] = r(c["items"], d)
    sd[emb + "LayerNorm.weight"], sd[emb + "LayerNorm.bias"] = 1 + r(d), r(d)
    sd[emb + "position_ids"] = torch.arange(c["positions"])[None]
    for i in range(c["layers"]):
        p = f"longformer.encoder.layer.{i}."
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            sd[p + f"attention.self.{name}.weight"], sd[p + f"attention.self.{name}.bias"] = r(d, d), r(d)
        sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"] = r(d, d), r(d)
        sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"] = 1 + r(d), r(d)
        sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"] = r(c["inter"], d), r(c["inter"])
        sd[p + "output.dense.weight"], sd[p + "output.dense.bias"] = r(d, c["inter"]), r(d)
        sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"] = 1 + r(d), r(d)
    sd["lm_head.dense.weight"], sd["lm_head.dense.bias"] = r(d, d), r(d)
    sd["lm_head.layer_norm.weight"], sd["lm_head.layer_norm.bias"] = 1 + r(d), r(d)
    sd["lm_head.decoder.weight"], sd["lm_head.bias"] = r(c["vocab"], d), r(c["vocab"])
    sd["lm_head.decoder.bias"] = sd["lm_head.bias"]
    sd["item_embedding.weight"] = r(c["num_items"], d)
    return sd


def reference_forward(sd, input_ids, attention_mask, token_type_ids, item_position_ids, global_attention_mask):
    """RecformerModel + LongformerEncoder written from the raw tensors: embeddings (RoBERTa positions from
    pad id 1), per-query Longformer attention, post-norm layers, exact GELU; returns last_hidden_state."""
    c, eps, pad = TINY, 1e-5, 1
    d, heads, half = c["dim"], c["heads"], c["window"] // 2
    head_dim = d // heads
    w = lambda key: sd["longformer." + key]
    lin = lambda x, key: x @ w(key + ".weight").T + w(key + ".bias")
    norm = lambda x, key: F.layer_norm(x, (d,), w(key + ".weight"), w(key + ".bias"), eps)
    real_tok = input_ids.ne(pad).long()
    positions = torch.cumsum(real_tok, 1) * real_tok + pad
    h = (
        w("embeddings.word_embeddings.weight")[input_ids]
        + w("embeddings.position_embeddings.weight")[positions]
        + w("embeddings.token_type_embeddings.weight")[token_type_ids]
        + w("embeddings.item_position_embeddings.weight")[item_position_ids]
    )
    h = norm(h, "embeddings.LayerNorm")
    real, glob = attention_mask.bool(), global_attention_mask.bool() & attention_mask.bool()
    batch, length = input_ids.shape
    for layer in range(c["layers"]):
        p = f"encoder.layer.{layer}."
        proj = {
            n: lin(h, p + f"attention.self.{n}")
            for n in ("query", "key", "value", "query_global", "key_global", "value_global")
        }
        attn = torch.zeros(batch, length, d)
        for b in range(batch):
            for i in range(length):
                if not real[b, i]:
                    continue
                if glob[b, i]:
                    keys, qn, kn, vn = (
                        [j for j in range(length) if real[b, j]],
                        "query_global",
                        "key_global",
                        "value_global",
                    )
                else:
                    keys = [j for j in range(length) if real[b, j] and (glob[b, j] or abs(i - j) <= half)]
                    qn, kn, vn = "query", "key", "value"
                for hd in range(heads):
                    cols = slice(hd * head_dim, (hd + 1) * head_dim)
                    q = proj[qn][b, i, cols] / math.sqrt(head_dim)
                    prob = torch.softmax(proj[kn][b, keys, cols] @ q, 0)
                    attn[b, i, cols] = prob @ proj[vn][b, keys, cols]
        h = norm(h + lin(attn, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        inner = F.gelu(lin(h, p + "intermediate.dense"))
        h = norm(h + lin(inner, p + "output.dense"), p + "output.LayerNorm")
    return h


def release_inputs():
    """Two histories as the official tokenizer pads them: pad id 1, token type 3, item position items-1."""
    ids = torch.randint(5, TINY["vocab"], (2, 13), generator=torch.Generator().manual_seed(3))
    ids[:, 0] = 0
    ids[1, 9:] = 1
    types = torch.tensor([[0] + [1, 2, 2, 2, 1, 2] * 2, [0, 1, 2, 2, 1, 2, 1, 2, 2, 3, 3, 3, 3]])
    items = torch.tensor([[0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3], [0, 1, 1, 1, 2, 2, 3, 3, 3, 5, 5, 5, 5]])
    mask = ids.ne(1).long()
    glob = torch.zeros_like(mask)
    glob[:, 0] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "item_position_ids": items,
            "global_attention_mask": glob}  # fmt: skip


def test_converter_matches_reference_forward_on_release_layout(tmp_path):
    sd = official_release()
    folder = tmp_path / "release"
    folder.mkdir()
    torch.save(sd, folder / "seqrec_pretrain_ckpt.bin")
    (folder / "config.json").write_text(json.dumps({"num_attention_heads": 2, "attention_window": [4, 4]}))
    state, arch = get_converter("recformer")(folder)
    assert arch["name"] == "recformer_base"
    assert arch["kwargs"]["num_items"] == 7 and arch["kwargs"]["mlm_head"] and arch["kwargs"]["num_heads"] == 2
    model = from_pretrained(folder)  # detected as the Recformer release through zoo.convert
    inputs = release_inputs()
    with torch.no_grad():
        ours = model.forward_features(inputs)
        expected = reference_forward(sd, **inputs)
        real = inputs["attention_mask"].bool()
        torch.testing.assert_close(ours[real], expected[real], rtol=1e-5, atol=1e-5)
        # scores: cosine / 0.05 against the release's item_embedding (the official Similarity module)
        cosine = F.cosine_similarity(expected[:, 0, None, :], sd["item_embedding.weight"][None], dim=-1) / 0.05
        torch.testing.assert_close(model.score(ours[:, 0]), cosine, rtol=1e-5, atol=1e-4)
        # MLM head: dense -> gelu -> LayerNorm -> decoder (+ lm_head.bias)
        x = F.gelu(expected @ sd["lm_head.dense.weight"].T + sd["lm_head.dense.bias"])
        x = F.layer_norm(x, (TINY["dim"],), sd["lm_head.layer_norm.weight"], sd["lm_head.layer_norm.bias"], 1e-5)
        logits = x @ sd["lm_head.decoder.weight"].T + sd["lm_head.bias"]
        torch.testing.assert_close(model.mlm_logits(ours)[real], logits[real], rtol=1e-5, atol=1e-4)


def test_converter_reads_the_bare_recformer_model_and_rejects_foreign_keys(tmp_path):
    sd = {k[len("longformer.") :]: v for k, v in official_release().items() if k.startswith("longformer.")}
    torch.save(sd, tmp_path / "recformer_pretrain_ckpt.bin")
    state, arch = get_converter("recformer")(tmp_path / "recformer_pretrain_ckpt.bin")
    assert not arch["kwargs"]["mlm_head"] and arch["kwargs"]["num_items"] == 0
    assert arch["kwargs"]["num_heads"] == 1 and arch["kwargs"]["attention_window"] == 64  # release defaults, no config
    torch.save({**sd, "classifier.weight": torch.zeros(2, 2)}, tmp_path / "recformer_pretrain_ckpt.bin")
    with pytest.raises(ZooError, match="classifier.weight"):
        get_converter("recformer")(tmp_path)


# ----------------------------------------------------------------------------- training on ML-100k


def test_short_pretraining_on_movielens_beats_popularity_and_random():
    """400 users x the 300 most rated movies (ML-100k subset), test_recformer from scratch, 100 steps of the
    contrastive objective (batch 32, lr 3e-3): the loss falls and test NDCG@10 (full catalogue of 300, no
    history masking) beats popularity's and twice random's (measured: 0.041 vs 0.017 and 0.015)."""
    torch.manual_seed(0)
    data = most_popular_items(load_movielens_100k(max_users=400), 300)
    split = leave_one_out(data)
    tokenizer = ItemTokenizer.train(data.catalogue.texts(), vocab_size=512)
    config = SentenceConfig(max_items=5, max_tokens=160)
    batcher = RecformerBatcher.from_catalogue(tokenizer, data.catalogue.attributes, config)
    model = create_model("test_recformer", dropout=0.0, attention_dropout=0.0, **config.model_kwargs(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng, train, losses = random.Random(0), [s for s in split.train if len(s) >= 2], []
    for _ in range(100):
        history, item = batcher.pretraining(rng.sample(train, 32), rng)
        loss = model.pretraining_loss(history, item, mlm_weight=0.0)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20 - 0.15
    model.refresh_item_table(batcher.item_batches(512))
    model.eval()
    with torch.no_grad():
        ours = evaluate(lambda hs: model.score(model.encode(batcher.histories(hs))), split.test)
    popularity = evaluate(popularity_baseline(split.train, len(data.catalogue)), split.test)
    chance = random_expectation(len(data.catalogue))
    assert ours["ndcg@10"] > popularity["ndcg@10"]
    assert ours["ndcg@10"] > 2 * chance["ndcg@10"]
