"""SwinBERT: attention pattern (causal captions, video tokens through the learned mask), sparsity regulariser,
MLM masking, greedy == beam search of size 1, memorising captions, local Kinetics-layout encoder weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.video import swin3d_s, swin3d_t
from torchvision.models.video.swin_transformer import SwinTransformer3d

from zoo import ZooError, create_model
from zoo.hub import save_pretrained
from zoo.models.swinbert import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SwinBERT, mask_caption_tokens


def build(seed: int = 0, **kw) -> SwinBERT:
    torch.manual_seed(seed)
    return create_model("test_swinbert", **kw).eval()


def clip_and_caption(model: SwinBERT, batch: int = 2, length: int = 10, seed: int = 1):
    torch.manual_seed(seed)
    return model.example_inputs(batch, length)


def test_capabilities_are_declared():
    assert SwinBERT.captioner and SwinBERT.causal and not SwinBERT.recurrent
    model = build()
    assert model.num_video_tokens == 32 and model.video_mask_logits.shape == (32, 32)
    assert model.num_classes == model.vocab_size  # the head is the MLM vocabulary projection


def test_changing_a_later_caption_token_leaves_earlier_logits_unchanged():
    model = build()
    frames, ids = clip_and_caption(model)
    with torch.no_grad():
        before = model.caption_forward(frames, ids).logits
        edited = ids.clone()
        edited[:, 6] = (edited[:, 6] + 1 - 5) % (model.vocab_size - 5) + 5
        after = model.caption_forward(frames, edited).logits
    torch.testing.assert_close(after[:, :6], before[:, :6], rtol=0, atol=1e-6)
    assert (after[:, 6:] - before[:, 6:]).abs().amax() > 1e-3


def _perturbed_states(model: SwinBERT, token: int, ids: torch.Tensor):
    """Video states and caption features before/after changing projected video token `token`."""
    torch.manual_seed(3)
    tokens = torch.randn(ids.shape[0], model.num_video_tokens, 32)
    moved = tokens.clone()
    moved[:, token] += 1.0
    with torch.no_grad():
        a, b = model.video_stream(tokens), model.video_stream(moved)
        captions = model.caption_features(ids, a), model.caption_features(ids, b)
    return (a.states, b.states), captions


def test_video_tokens_see_every_video_token_and_captions_see_every_video_token():
    model = build(learned_mask=False)
    _, ids = clip_and_caption(model)
    for token in (0, 13, 31):
        (before, after), (cap_before, cap_after) = _perturbed_states(model, token, ids)
        assert ((after - before).abs().amax(-1) > 1e-4).all()  # every video token moved
        assert ((cap_after - cap_before)[:, 0].abs().amax(-1) > 1e-4).all()  # even the first caption token


def test_learned_mask_gates_attention_among_video_tokens():
    model = build()
    _, ids = clip_and_caption(model)
    with torch.no_grad():
        model.video_mask_logits.fill_(-60.0)  # sigmoid ~ 1e-26: every video token keeps to itself
    (before, after), (cap_before, cap_after) = _perturbed_states(model, 13, ids)
    change = (after - before).abs().amax(-1)
    assert (change[:, 13] > 1e-3).all()
    assert change[:, [i for i in range(32) if i != 13]].amax() < 1e-6
    assert ((cap_after - cap_before)[:, 0].abs().amax(-1) > 1e-4).all()  # captions still read every video token

    # Switching the mask on or off changes the video states (random N(0, 1) mask logits, as initialised).
    on, off = build(seed=5), build(seed=5, learned_mask=False)
    off.load_state_dict({k: v for k, v in on.state_dict().items() if k != "video_mask_logits"})
    tokens = torch.randn(2, 32, 32)
    with torch.no_grad():
        assert (on.video_stream(tokens).states - off.video_stream(tokens).states).abs().amax() > 1e-3


def test_official_mask_bias_is_bert_minus_10000_and_a_full_mask_is_full_attention():
    official, full = build(seed=2, mask_bias="official"), build(seed=2, learned_mask=False)
    with torch.no_grad():
        official.video_mask_logits.fill_(30.0)  # sigmoid = 1 - 9e-14: BERT bias -1e-9
    full.load_state_dict({k: v for k, v in official.state_dict().items() if k != "video_mask_logits"})
    tokens = torch.randn(2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(official.video_stream(tokens).states, full.video_stream(tokens).states)
        official.video_mask_logits.fill_(0.0)  # 0.5 -> bias -5000: the official code then drops the attention
        bias = official.video_attention_bias()[0, 0]
    assert bias.diagonal().eq(0).all() and torch.allclose(bias[0, 1], torch.tensor(-5000.0))


def test_two_stream_layers_equal_one_joint_sequence_with_the_official_mask():
    """The official layout: [caption, video] in one BERT, mask causal C-C, full C-V, none V-C, learned V-V."""
    model = build(seed=4)
    frames, ids = clip_and_caption(model, length=7)
    with torch.no_grad():
        tokens = model.video_tokens(frames)
        ours = model.caption_features(ids, model.video_stream(tokens))
        length, nv = ids.shape[1], model.num_video_tokens
        mask = torch.zeros(length + nv, length + nv)
        mask[:length, :length] = torch.tril(torch.ones(length, length))
        mask[:length, length:] = 1
        mask[length:, length:] = model.video_mask()
        x = model.embed_norm(model.word_embeddings(ids) + model.position_embeddings(torch.arange(length)))
        x = torch.cat([x, tokens], dim=1)
        for layer in model.layers:
            q, k, v = layer.split_heads(x)
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            # log-mask bias: softmax(s + log m) = m e^s / sum m e^s
            weights = torch.softmax(scores + torch.log(mask), dim=-1)
            x = layer.finish(x, weights @ v)
        reference = model.mlm_transform(x[:, :length])
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_sparsity_regulariser_is_the_hand_computed_l1():
    model = build(sparsity_weight=0.3)
    torch.manual_seed(7)
    with torch.no_grad():
        model.video_mask_logits.copy_(torch.randn(32, 32) * 3)
    logits = model.video_mask_logits.tolist()
    total = sum(1 / (1 + math.exp(-logits[i][j])) for i in range(32) for j in range(32) if i != j)
    expected = 0.3 * total / (32 * 32)
    assert model.sparsity_loss().item() == pytest.approx(expected, rel=1e-6)
    model.sparsity_loss().backward()
    grad = model.video_mask_logits.grad
    assert grad.diagonal().eq(0).all() and (grad.fill_diagonal_(1.0) > 0).all()  # pushes every off-diagonal down
    assert build(learned_mask=False).sparsity_loss().item() == 0.0
    frames, ids = clip_and_caption(model)
    assert model.caption_forward(frames, ids).sparsity_loss.item() == pytest.approx(expected, rel=1e-6)


def test_mask_caption_tokens_follows_the_official_rule():
    lengths = torch.tensor([3, 8, 12, 20])
    ids = torch.full((4, 20), PAD_ID)
    for row, n in enumerate(lengths.tolist()):
        ids[row, :n] = torch.randint(5, 30, (n,))
        ids[row, 0], ids[row, n - 1] = CLS_ID, SEP_ID
    generator = torch.Generator().manual_seed(0)
    masked_total, replaced = 0, torch.zeros(3)
    for _ in range(300):
        inputs, masked_pos, targets = mask_caption_tokens(ids, 30, 0.5, 5, generator=generator)
        counts = masked_pos.sum(1)
        assert counts.tolist() == [2, 4, 5, 5]  # min(max(round(0.5 n), 1), max_masked=5)
        assert not masked_pos[:, 0].any() and not masked_pos[ids == PAD_ID].any()
        assert torch.equal(targets, ids[masked_pos]) and torch.equal(inputs[~masked_pos], ids[~masked_pos])
        new = inputs[masked_pos]
        replaced += torch.tensor([(new == MASK_ID).sum(), ((new != MASK_ID) & (new != targets)).sum(), 0])
        masked_total += len(new)
    share = replaced[:2] / masked_total
    assert abs(share[0] - 0.8) < 0.03 and abs(share[1] - 0.1 * 24 / 25) < 0.03  # random words may repeat the word


def _teacher_forced_score(model: SwinBERT, frames, words: list[int], max_length: int, penalty: float) -> float:
    """sum log p of a caption (plus [SEP] when it ended before max_length) / length ** penalty."""
    tokens = words + ([SEP_ID] if len(words) < max_length else [])
    with torch.no_grad():
        memory = model.encode_video(frames)
        total = 0.0
        for t, token in enumerate(tokens):
            prefix = torch.tensor([[CLS_ID, *tokens[:t]]])
            total += model.next_token_logprobs(prefix, memory)[0, token].item()
    return total / len(tokens) ** penalty


def test_beam_search_of_size_one_is_greedy_decoding():
    model = build(seed=11)
    with torch.no_grad():  # a sharper random model, so that captions differ per clip and some end before max_length
        for name, p in model.named_parameters():
            if p.dim() == 2 and not name.startswith("encoder") and name != "video_mask_logits":
                p.normal_(0, 0.3)
        model.head.bias[SEP_ID] += 1.0
    frames, _ = clip_and_caption(model, batch=8, seed=12)
    greedy, greedy_scores = model.generate(frames, max_length=12, return_scores=True)
    beam, beam_scores = model.generate(frames, max_length=12, num_beams=1, use_beam_search=True, return_scores=True)
    assert greedy == beam
    assert greedy_scores == pytest.approx(beam_scores, abs=1e-5)
    lengths = [len(c) for c in greedy]
    assert max(lengths) == 12 and min(lengths) < 12  # both ways of ending: [SEP] and max_length
    assert len({tuple(c) for c in greedy}) > 1
    # Wider beams return their best hypothesis with the score it really has.
    wide, wide_scores = model.generate(frames[:4], max_length=12, num_beams=4, length_penalty=0.7, return_scores=True)
    for row, words in enumerate(wide):
        assert all(w not in (PAD_ID, CLS_ID, MASK_ID, SEP_ID) for w in words)
        score = _teacher_forced_score(model, frames[row : row + 1], words, 12, 0.7)
        assert wide_scores[row] == pytest.approx(score, abs=1e-4)


def test_generate_checks_lengths():
    model = build()
    frames, _ = clip_and_caption(model)
    with pytest.raises(ZooError, match="max_caption_len"):
        model.generate(frames, max_length=24)
    with pytest.raises(ZooError, match="built for 4 frames"):
        model.generate(torch.rand(1, 5, 3, 32, 32))


def test_grey_frames_are_read_as_rgb():
    model = build()
    grey = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.video_tokens(grey), model.video_tokens(grey.expand(-1, -1, 3, -1, -1)))


def test_overfit_two_clips_then_greedy_decoding_repeats_their_captions():
    torch.manual_seed(0)
    model = build(seed=0).train()
    frames = torch.stack([torch.zeros(4, 3, 32, 32), torch.ones(4, 3, 32, 32)])
    frames[0, :, :, :16] = 1.0  # left half lit vs everything lit
    captions = [[7, 8, 9, 10, 11], [12, 13, 9, 14, 15, 16]]
    ids = torch.full((2, 8), PAD_ID)
    for row, words in enumerate(captions):
        ids[row, : len(words) + 2] = torch.tensor([CLS_ID, *words, SEP_ID])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        out = model.mlm_loss(frames, ids, mask_prob=0.5, max_masked=45, generator=generator)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.mlm_loss.item())
    assert sum(losses[-20:]) / 20 < 0.1 * sum(losses[:20]) / 20
    assert model.generate(frames, max_length=10) == captions
    assert model.generate(frames, max_length=10, num_beams=3) == captions
    assert model.training  # generate restored the mode


def test_encoder_weights_load_from_a_local_torchvision_state_dict(tmp_path):
    torch.manual_seed(21)
    kinetics = SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=[2, 4, 4], num_classes=400
    )
    torch.save(kinetics.state_dict(), tmp_path / "swin.pth")
    torch.save({"state_dict": kinetics.state_dict()}, tmp_path / "wrapped.pth")
    for name in ("swin.pth", "wrapped.pth"):
        model = create_model("test_swinbert", encoder_weights=str(tmp_path / name))
        theirs = {k: v for k, v in kinetics.state_dict().items() if not k.startswith("head.")}
        ours = model.encoder.state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
        assert "encoder_weights" not in model.zoo_config["kwargs"]  # a saved model must not need the file
    save_pretrained(model, tmp_path / "saved")
    assert "encoder_weights" not in (tmp_path / "saved" / "config.json").read_text()

    wider = SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=[2, 4, 4]
    )
    torch.save(wider.state_dict(), tmp_path / "wider.pth")
    with pytest.raises(ZooError, match="shape differs"):
        create_model("test_swinbert", encoder_weights=str(tmp_path / "wider.pth"))
    with pytest.raises(ZooError, match="no such file"):
        create_model("test_swinbert", encoder_weights=str(tmp_path / "absent.pth"))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(ZooError, match="cannot read"):
        create_model("test_swinbert", encoder_weights=str(tmp_path / "junk.pth"))


@pytest.mark.parametrize(("name", "reference"), [("swinbert_tiny", swin3d_t), ("swinbert_small", swin3d_s)])
def test_paper_sizes_use_torchvision_video_swin(name, reference):
    with torch.device("meta"):
        model, swin = create_model(name), reference(weights=None)
    theirs = {k: v.shape for k, v in swin.state_dict().items() if not k.startswith("head.")}
    assert {k: v.shape for k, v in model.encoder.state_dict().items()} == theirs
    assert model.num_video_tokens == 16 * 7 * 7  # 32 frames of 224x224: T/2 x H/32 x W/32 (official 784)
    assert len(model.layers) == 12 and model.num_features == 768


def test_loss_is_cross_entropy_at_masked_positions_plus_sparsity():
    model = build()
    frames, ids = clip_and_caption(model)
    out = model.mlm_loss(frames, ids, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (len(out.targets), model.vocab_size)
    torch.testing.assert_close(out.mlm_loss, F.cross_entropy(out.logits, out.targets))
    torch.testing.assert_close(out.loss, out.mlm_loss + model.sparsity_loss())
