"""The grouped next-token generator (LlamaGen-style, G sub-codes per position) on real UniTok-layout codes."""
import pytest
import torch

import zoo
from zoo import Codes, InputError
from zoo.generate.ar import ARConfig, ARGenerator

FIX = "tests/fixtures/unitok/"


@pytest.fixture(scope="module")
def photo_codes():
    """Codes [B, 16, 4] of real photos (and flips / crops of them) from the tiny UniTok fixture tokenizer."""
    from conftest import photo_batch

    tok = zoo.from_official("unitok", FIX + "tiny_official.safetensors", FIX + "tiny_args.json", heads=4)
    x = photo_batch(64, names=("astronaut", "coffee", "chelsea", "rocket"))
    x = torch.cat((x, x.flip(-1)))
    return tok, tok.encode(x), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


def tiny(tok) -> ARGenerator:
    sizes, T = tok.spec.codebook_sizes, tok.spec.max_tokens
    return ARGenerator(ARConfig(codebook_sizes=sizes, seq_len=T, num_classes=4, width=32, depth=2, heads=4,
                                class_dropout=0.1), tokenizer="unitok")


def test_trains_on_photo_codes_and_samples_decodable_codes(photo_codes):
    tok, codes, labels = photo_codes
    torch.manual_seed(0)
    gen = tiny(tok)
    opt = torch.optim.AdamW(gen.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    gen.train()
    losses = []
    for _ in range(40):
        loss = gen.loss(codes, labels, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    gen.eval()
    out = gen.sample([0, 3], seed=1, guidance=1.5, top_k=8)
    assert out.indices.shape == (2, 16, 4) and out.codebook_sizes == tok.spec.codebook_sizes
    assert torch.equal(out.indices, gen.sample([0, 3], seed=1, guidance=1.5, top_k=8).indices)  # seeded
    assert not torch.equal(out.indices, gen.sample([0, 3], seed=2, guidance=1.5, top_k=8).indices)
    images = gen.generate_images(tok, [1], seed=0)
    assert images.shape == (1, 3, 64, 64) and 0 <= images.min() and images.max() <= 1


def test_cached_sampling_agrees_with_teacher_forcing(photo_codes):
    """Greedy sampling (top-1) with the KV cache picks, at every position, the argmax of the full forward."""
    tok, _, _ = photo_codes
    torch.manual_seed(1)
    gen = tiny(tok).eval()
    out = gen.sample([2, 1], seed=0, top_k=1)
    with torch.no_grad():
        logits = gen(out.indices, torch.tensor([2, 1]))
    assert torch.equal(torch.stack([lg.argmax(-1) for lg in logits], -1), out.indices)


def test_bad_input(photo_codes):
    tok, codes, _ = photo_codes
    gen = tiny(tok)
    with pytest.raises(InputError, match="class label 9 is out of range"):
        gen.sample([9])
    with pytest.raises(InputError, match=r"codes \[B, 16, 4\]"):
        gen.loss(Codes(codes.indices[:, :8]), torch.zeros(8, dtype=torch.long))
    other = zoo.build("vqgan", zoo.families.vqgan.TINY_CONFIG)
    with pytest.raises(InputError):
        gen.generate_images(other, [0])


def test_generation_fid_against_cached_reference_statistics(photo_codes, tmp_path):
    """gFID: samples decoded and scored against a reference .npz; another extractor's statistics are refused."""
    from conftest import photo_batch

    from zoo.eval import FeatureStats, ReferenceStats, build_extractor, protocol
    from zoo.eval.testing import TinyExtractor, tiny_extractor
    from zoo.generate.fid import balanced_labels, generation_fid
    from zoo.images import to_uint8

    tok, _, _ = photo_codes
    ext = build_extractor(tiny_extractor())
    real = photo_batch(64, names=("astronaut", "coffee", "chelsea", "rocket", "retina", "hubble_deep_field"))
    stats = FeatureStats()
    stats.update(ext(to_uint8(real)))
    ReferenceStats.from_stats(stats, protocol(64, "center", ext), ext.describe()).save(tmp_path / "ref.npz")
    torch.manual_seed(0)
    gen = tiny(tok).eval()
    out = generation_fid(gen, tok, tmp_path / "ref.npz", num_samples=6, batch_size=4, extractor=ext, top_k=8)
    assert out["n"] == 6 and out["gfid"] > 0
    assert out["protocol"]["labels"] == "0..3 repeated" and out["protocol"]["sampler"]["top_k"] == 8
    again = generation_fid(gen, tok, tmp_path / "ref.npz", num_samples=6, batch_size=4, extractor=ext, top_k=8)
    assert again["gfid"] == out["gfid"]  # seeded per batch
    assert balanced_labels(6, 4).tolist() == [0, 1, 2, 3, 0, 1]
    with pytest.raises(InputError, match="do not match this run"):
        generation_fid(gen, tok, tmp_path / "ref.npz", num_samples=4, extractor=build_extractor(TinyExtractor(seed=1)))
