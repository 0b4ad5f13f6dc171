"""ALIT against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/alit/README.md says how they were made): ShivamDuggal4/adaptive-length-tokenizer
at 8c0b4ec29c76963ad81ffdd91c9afd901f5215f5 (`adaptive_tokenizers.alit_*`, class
`adaptive_tokenizers.adaptive_vqgan.AdaptiveLengthImageTokenizer` with `VQGANWrapper`): key/shape manifests of the
released configs, and a tiny random-weight official-layout checkpoint ("alit_micro", a size added to a scratch
copy's tables) with the official outputs of all 8 rollouts under ``torch.manual_seed(0)`` on CPU.
"""
import argparse
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import Codes, ConfigError, InputError
from zoo.config import config_from_dict
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.registry import get_entry, get_family, list_models

FIXTURE = Path(__file__).parent / "fixtures" / "alit"
ATOL = 1e-4
RELEASED = ("alit-small", "alit-small-in100", "alit-base-in100", "alit-semilarge-in100")


def load_tiny(**overrides):
    tok = zoo.from_official("alit", FIXTURE / "tiny_official.safetensors", FIXTURE / "tiny_config.yaml",
                            heads=4, **overrides)
    return tok, load_file(str(FIXTURE / "tiny_io.safetensors"))


@pytest.fixture(scope="module")
def tiny():
    return load_tiny()


@pytest.mark.parametrize("name", RELEASED)
def test_released_manifest_loads_strictly(name):
    """Every kept key of the released `['ema']` is consumed, every model key filled; only gan_losses.* skipped."""
    info = json.loads((FIXTURE / "manifest.json").read_text())["models"][name]
    official = meta_state_dict(info["keys"])
    entry = get_entry(name)
    spec = get_family("alit")
    config = config_from_dict(spec.config_cls, dict(entry.config))
    assert spec.config_from_official(info["official_config"], official) == config
    kept, skipped = drop(official, spec.skip)
    assert skipped and all(k.startswith("gan_losses.") for k in skipped)
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(kept, config), source=f"{name} manifest")
    assert sum(p.numel() for p in model.parameters()) == info["num_params_without_gan_losses"]
    assert entry.url and entry.url.startswith("https://www.dropbox.com/") and entry.extra["official_file"]


def test_tiny_parity_all_rollouts(tiny):
    """Rollout by rollout with the official masking RNG matched: latents, indices, logits, halting, images."""
    tok, io = tiny
    assert (tok.config.width, tok.config.depth, tok.config.tokens_per_rollout, tok.config.max_rollouts) == (48, 2, 4, 8)
    assert tok.config.halting_threshold == 0.3  # read from the official yaml
    x = io["images"]
    with torch.no_grad():
        _, gt = tok.image_tokens(x)
        assert torch.equal(gt, io["gt_indices"])
        assert torch.allclose(tok.base_encoder(x), io["base_features"], atol=ATOL)
        steps = list(tok.rollouts(x, generator=torch.Generator().manual_seed(0)))
    assert len(steps) == 8
    dropped = 0
    for s in steps:
        r = s.index
        assert s.latents.shape == (3, 4 * (r + 1), 48)
        assert torch.allclose(s.latents, io[f"latent_tokens_{r}"], atol=ATOL)
        assert torch.equal(s.quantizer.indices, io[f"indices_{r}"])
        assert torch.allclose(s.logits, io[f"logits_{r}"], atol=ATOL)
        assert torch.equal(s.drop, io[f"drop_mask_{r}"])
        dropped += int(s.drop.sum())
        with torch.no_grad():
            assert torch.allclose(tok.pixels_from_logits(s.logits), io[f"reconstructed_{r}"], atol=ATOL)
    assert dropped > 5  # the fixture exercises the halting (tokens were masked)


def test_encode_decode_every_budget_matches_official(tiny):
    tok, io = tiny
    assert tok.spec.token_choices == (4, 8, 12, 16, 20, 24, 28, 32) and tok.spec.variable_length
    for r in (0, 2, 5):  # every rollout is compared in test_tiny_parity_all_rollouts
        k = 4 * (r + 1)
        codes = tok.encode(io["images"], num_tokens=k)  # deterministic, seed 0: the official draws
        assert codes.num_tokens == k and codes.token_counts().tolist() == [k] * 3
        assert torch.equal(codes.indices[..., 0], io[f"indices_{r}"])
        out = tok.decode(codes, clamp=False)
        assert torch.allclose(out, io[f"reconstructed_{r}"], atol=ATOL), (out - io[f"reconstructed_{r}"]).abs().max()
    full = tok.encode(io["images"])
    assert full.lengths is None and torch.equal(full.indices[..., 0], io["indices_7"])
    assert torch.allclose(tok.decode(full), io["reconstructed_7"].clamp(0, 1), atol=ATOL)


def test_masking_rng(tiny):
    """Rollout 0 never depends on the seed; later ones do; deterministic encodes repeat; the global RNG path
    (deterministic=False) is the release's own behaviour."""
    tok, io = tiny
    x = io["images"]
    a, b = tok.encode(x, num_tokens=4, seed=0), tok.encode(x, num_tokens=4, seed=5)
    assert torch.equal(a.indices, b.indices)
    runs = [tok.encode(x, num_tokens=16, seed=s).indices for s in (0, 0, 1, 2, 3)]
    assert torch.equal(runs[0], runs[1])
    assert any(not torch.equal(runs[0], r) for r in runs[2:])
    torch.manual_seed(0)
    assert torch.equal(tok.encode(x, num_tokens=32, deterministic=False).indices[..., 0], io["indices_7"])


def test_encode_skips_the_last_rollouts_decoder(tiny):
    """The last rollout's decoder pass only feeds a halting draw nobody reads: a deterministic encode skips it (same
    tokens: the official ones, test above), the global-RNG encode keeps it so the RNG advances as in the release."""
    tok, io = tiny
    calls = []
    hook = tok.decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        tok.encode(io["images"], num_tokens=12)
        assert len(calls) == 2
        calls.clear()
        torch.manual_seed(0)
        tok.encode(io["images"], num_tokens=12, deterministic=False)
        assert len(calls) == 3
        calls.clear()
        tok.encode_latents(io["images"])
        assert len(calls) == 7
    finally:
        hook.remove()
    with pytest.raises(ValueError, match="private generator"):
        next(tok.rollouts(io["images"], last_logits=False))


def test_mixed_lengths_decode_like_alone(tiny):
    tok, io = tiny
    c8, c32 = tok.encode(io["images"], num_tokens=8), tok.encode(io["images"], num_tokens=32)
    indices = c32.indices.clone()
    indices[0, :8] = c8.indices[0]
    mixed = Codes(indices, lengths=torch.tensor([8, 32, 32]))
    out = tok.decode(mixed, clamp=False)
    assert torch.allclose(out[0], io["reconstructed_1"][0], atol=ATOL)
    assert torch.allclose(out[1:], io["reconstructed_7"][1:], atol=ATOL)


def test_auto_picks_per_image():
    """A flat image and a detailed photo in one batch get different counts, each the smallest meeting the threshold.

    The tiny model has random weights, so its errors carry no meaning: the threshold is chosen from the measured
    per-image error curves such that the two images cross it at different rollouts.
    """
    from conftest import photo_batch

    tok, _ = load_tiny()
    images = torch.cat([torch.full((1, 3, 32, 32), 0.5), photo_batch(32, ("astronaut",))])
    with torch.no_grad():  # per-image error of every rollout (one pass, the same seeded halting draws as encode)
        err = torch.stack([(tok.pixels_from_logits(s.logits) - images).abs().flatten(1).mean(1)
                           for s in tok.rollouts(images, generator=torch.Generator().manual_seed(0))], 1).double()

    def first_below(t):
        hits = [(e < t).nonzero().flatten() for e in err]
        return [int(h[0]) if len(h) else None for h in hits]

    candidates = sorted(err.flatten().tolist())
    thresholds = [(lo + hi) / 2 for lo, hi in zip(candidates, candidates[1:])]
    usable = [t for t in thresholds if None not in first_below(t) and len(set(first_below(t))) == 2]
    assert usable, f"no threshold separates the two images: {err}"
    t = usable[len(usable) // 2]
    codes = tok.encode(images, num_tokens="auto", threshold=t)
    expected = [4 * (r + 1) for r in first_below(t)]
    assert codes.lengths.tolist() == expected and expected[0] != expected[1]
    for i, k in enumerate(expected):
        one = tok.encode(images, num_tokens=k)
        assert torch.equal(codes.indices[i, :k], one.indices[i])
        assert abs(float((tok.decode(one[i], clamp=False) - images[i]).abs().mean()) - float(err[i, k // 4 - 1])) < ATOL
        assert err[i, k // 4 - 1] < t and all(err[i, j] >= t for j in range(k // 4 - 1))
    rec = tok.decode(codes, clamp=False)  # mixed lengths decode per image
    for i, k in enumerate(expected):
        assert float((rec[i] - images[i]).abs().mean()) < t
    # nothing meets an impossible threshold: each image keeps its rollout of least error (the release's fallback)
    fallback = tok.encode(images, num_tokens="auto", threshold=0.0)
    assert fallback.lengths.tolist() == [4 * (int(e.argmin()) + 1) for e in err]


def test_budgets_and_inputs_are_checked(tiny):
    tok, io = tiny
    with pytest.raises(InputError, match="must be one of"):
        tok.encode(io["images"], num_tokens=6)
    with pytest.raises(InputError, match=r"must be in \[4, 32\]"):
        tok.encode(io["images"], num_tokens=36)
    with pytest.raises(InputError, match="threshold= goes with"):
        tok.encode(io["images"], num_tokens=8, threshold=0.1)
    codes = tok.encode(io["images"], num_tokens=8)
    with pytest.raises(InputError, match="tokens of one rollout"):
        tok.decode(Codes(codes.indices[:, :6]))


def test_official_pickle_with_args_and_gan_losses(tmp_path):
    """A released-style file: {'ema', 'model', 'args': Namespace, ...}; gan_losses.* skipped by name, heads from
    the args' size name when official, else `heads=`; a wrong official config is refused."""
    sd = load_file(str(FIXTURE / "tiny_official.safetensors"))
    ema = {**sd, "gan_losses.0.discriminator.main.0.weight": torch.zeros(4, 3, 4, 4)}
    args = argparse.Namespace(model="alit_micro", base_tokenizer="vqgan", quantize_latent=True, input_size=32)
    torch.save({"model": ema, "ema": ema, "args": args, "epoch": 3}, tmp_path / "checkpoint-last.pth")
    with pytest.raises(ConfigError, match="pass heads=N"):
        zoo.from_official("alit", tmp_path / "checkpoint-last.pth")
    tok = zoo.from_official("alit", tmp_path / "checkpoint-last.pth", heads=4)
    ref, io = load_tiny()
    assert tok.config == config_from_dict(type(ref.config), {**vars(ref.config), "halting_threshold": 0.55})
    assert torch.equal(tok.encode(io["images"], num_tokens=4).indices[..., 0], io["indices_0"])
    with pytest.raises(zoo.CheckpointError, match="img_size=64"):
        zoo.from_official("alit", FIXTURE / "tiny_official.safetensors", {"img_size": 64}, heads=4)


def test_unsupported_variants_are_known():
    names = list_models(family="alit")
    assert set(RELEASED) <= set(names)
    for name in ("alit-small-continuous-in100", "alit-small-vae-in100", "alit-small-vae-continuous-in100"):
        entry = get_entry(name)
        config = config_from_dict(get_family("alit").config_cls, dict(entry.config))
        with pytest.raises(ConfigError, match="not supported"), torch.device("meta"):
            get_family("alit").tokenizer_cls(config)


def test_training_forward(tiny):
    tok, io = tiny
    out = tok(io["images"], rollouts=[0, 3], generator=torch.Generator().manual_seed(0))
    assert sorted(out["images"]) == [0, 3]
    assert torch.equal(out["gt_indices"], io["gt_indices"])
    assert torch.allclose(out["images"][3], io["reconstructed_3"], atol=ATOL)
    assert torch.isfinite(out["quantizer"][0].loss)


def test_load_by_name_with_official_file_and_cli(tmp_path):
    """zoo.load(name, checkpoint=<released-style .pth>) and `zoo reconstruct --tokens 4,32,auto` on real photos."""
    from PIL import Image

    from conftest import photo, photo_batch
    from zoo.cli import main
    from zoo.registry import ModelEntry, register_model

    ref, _ = load_tiny()
    sd = load_file(str(FIXTURE / "tiny_official.safetensors"))
    torch.save({"ema": sd, "args": argparse.Namespace(model="alit_micro")}, tmp_path / "alit_micro.pth")
    register_model(ModelEntry(name="test-alit-tiny", family="alit", config={**vars(ref.config)}), overwrite=True)
    tok = zoo.load("test-alit-tiny", checkpoint=tmp_path / "alit_micro.pth")
    images = photo_batch(32, ("astronaut", "coffee"))
    assert torch.equal(tok.encode(images, num_tokens=12).indices, ref.encode(images, num_tokens=12).indices)
    for name in ("astronaut", "coffee"):
        Image.fromarray(photo(name)).save(tmp_path / f"{name}.png")
    out = tmp_path / "rec"
    assert main(["reconstruct", str(tmp_path / "astronaut.png"), str(tmp_path / "coffee.png"), "-m", "test-alit-tiny",
                 "--checkpoint", str(tmp_path / "alit_micro.pth"), "--tokens", "4,32,auto", "-o", str(out),
                 "--device", "cpu", "-q"]) == 0
    assert {"astronaut_k4.png", "coffee_k32.png", "grid.png"} <= {p.name for p in out.glob("*.png")}


TRAIN_MODEL = dict(image_size=32, patch_size=8, width=48, depth=1, heads=4, tokens_per_rollout=4, max_rollouts=3,
                   max_latent_tokens=12, codebook_size=32, token_size=8, base_hidden_channels=32,
                   base_channel_mult=[1, 1, 1, 1], base_num_res_blocks=1, base_z_channels=16, base_codebook_size=16)


def test_training_hooks_both_stages(tmp_path):
    """Stage 1: per-rollout NLL + soft-code MSE with the base VQGAN frozen (copied from the teacher); stage 2: one
    rollout per step, cycling, with pixel losses."""
    from zoo.train import train

    torch.manual_seed(1)
    teacher = zoo.build("vqgan", dict(image_size=32, hidden_channels=32, channel_mult=[1, 1, 1, 1], num_res_blocks=1,
                                      z_channels=16, codebook_size=16))
    teacher.save_pretrained(tmp_path / "teacher")
    base = {"family": "alit", "model": TRAIN_MODEL, "seed": 0,
            "data": {"paths": ["skimage:astronaut", "skimage:coffee", "skimage:chelsea"], "crop_size": 32,
                     "resize_range": [32, 64], "batch_size": 2, "cache_shorter": 96},
            "optim": {"lr": 1e-3}}
    with pytest.raises(ConfigError, match="one weight per rollout"):
        train({**base, "loss": {"l2": 0.0, "rollout_weights": [1.0, 1.0]}, "train": {"stage": 1, "max_steps": 1}},
              output=tmp_path / "x", quiet=True)
    s1 = train({**base, "loss": {"l2": 0.0, "rollout_weights": [2.5, 2.0, 1.5], "teacher": str(tmp_path / "teacher")},
                "train": {"stage": 1, "max_steps": 4, "log_every": 1, "save_every": 4, "threads": 1}},
               output=tmp_path / "s1", quiet=True)
    log = [json.loads(x) for x in (tmp_path / "s1" / "log.jsonl").read_text().splitlines()]
    assert "loss/rollout_nll" in log[0] and "loss/code_mse" in log[0] and "loss/l2" not in log[0]
    assert log[-1]["loss/rollout_nll"] < log[0]["loss/rollout_nll"]
    w1 = load_file(str(s1.model_dir / "model.safetensors"))
    assert torch.equal(w1["base_decoder.conv_out.weight"], teacher.decoder.conv_out.weight)  # frozen teacher copy
    s2 = train({**base, "model": {}, "loss": {"l1": 1.0, "l2": 0.0},
                "train": {"stage": 2, "init": str(s1.model_dir), "max_steps": 4, "log_every": 1, "save_every": 4,
                          "threads": 1}}, output=tmp_path / "s2", quiet=True)
    log = [json.loads(x) for x in (tmp_path / "s2" / "log.jsonl").read_text().splitlines()]
    assert [e["rollout"] for e in log] == [0.0, 1.0, 2.0, 0.0] and "loss/l1" in log[0]
    w2 = load_file(str(s2.model_dir / "model.safetensors"))
    assert not torch.equal(w2["base_decoder.conv_out.weight"], w1["base_decoder.conv_out.weight"])  # all weights train
