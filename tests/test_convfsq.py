"""Finite scalar quantization and the conv-FSQ family (the embedded default's architecture)."""
import math

import pytest
import torch

import zoo
from zoo.errors import ConfigError, ZooError
from zoo.families.convfsq import TINY_CONFIG
from zoo.quant import FiniteScalarQuantizer, codebook_usage


@pytest.mark.parametrize("levels", [(8, 8, 4), (8, 5, 5, 5), (7, 5, 5, 5, 5), (2, 3)])
def test_fsq_every_code_is_reachable_and_lookup_inverts_it(levels):
    q = FiniteScalarQuantizer(levels)
    K = math.prod(levels)
    assert q.codebook_size == K and q.dim == len(levels)
    book = q.codebook()  # [K, D], each channel on its own grid in [-1, 1]
    assert book.shape == (K, len(levels)) and book.abs().max() <= 1
    assert len({tuple(row.tolist()) for row in book}) == K  # K distinct vectors
    # inverting the bound: latents that land exactly on each code's digits come back as that code
    half = torch.tensor([v // 2 for v in levels], dtype=torch.float32)
    offset = torch.tensor([0.5 if v % 2 == 0 else 0.0 for v in levels])
    half_l = torch.tensor([(v - 1) * (1 + q.eps) / 2 for v in levels])
    digits = book * half
    z = torch.atanh((digits + offset) / half_l) - torch.atanh(offset / half_l)
    assert torch.equal(q.quantize(z), torch.arange(K))
    out = q(z)
    assert torch.equal(out.indices, torch.arange(K)) and torch.allclose(out.quantized, book, atol=1e-6)


def test_fsq_indices_are_mixed_radix_and_gradients_pass_straight_through():
    q = FiniteScalarQuantizer((8, 5, 5, 5))
    z = torch.randn(4, 6, 4, requires_grad=True)
    out = q(z)
    digits = (q.lookup(out.indices) * torch.tensor([4.0, 2, 2, 2]) + torch.tensor([4.0, 2, 2, 2])).round().long()
    assert torch.equal(out.indices, digits[..., 0] + 8 * digits[..., 1] + 40 * digits[..., 2] + 200 * digits[..., 3])
    assert torch.allclose(q.lookup(out.indices), out.quantized.detach())
    out.quantized.sum().backward()
    assert z.grad is not None and (z.grad > 0).all()  # d round_ste / dz = d bound / dz > 0
    assert float(out.loss) == 0.0
    with pytest.raises(IndexError):
        q.lookup(torch.tensor([1000]))
    with pytest.raises(ValueError):
        FiniteScalarQuantizer((8, 1))


def test_convfsq_round_trip_save_load_and_layout(tmp_path, photos64):
    tok = zoo.build("convfsq", **TINY_CONFIG).eval()
    codes = tok.encode(photos64)
    assert codes.indices.shape == (2, 64, 1) and codes.grid == (8, 8)
    assert tok.spec.codebook_sizes == (100,) and tok.spec.bits_per_token == 7
    assert int(codes.bits()[0]) == 64 * 7
    recon = tok.decode(codes)
    assert recon.shape == photos64.shape and 0 <= recon.min() and recon.max() <= 1
    tok.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    assert torch.equal(again.encode(photos64).indices, codes.indices)
    assert torch.equal(again.decode(codes), recon)


COLOUR_MAP = {**TINY_CONFIG, "levels": (8, 8, 4), "colour_block": 16}  # 64 px: 4x4 squares -> 48 colour tokens


def test_colour_map_sends_each_square_s_mean_and_the_decoder_lands_on_it(photos64):
    """Codes are 48 colour tokens (8-bit means of the 16x16 squares, R's map then G's then B's), then the 8x8 grid;
    the unclamped reconstruction's square means are those tokens' values, whatever the (random) decoder paints."""
    torch.manual_seed(0)
    tok = zoo.build("convfsq", **COLOUR_MAP).eval()
    spec = tok.spec
    assert spec.scales == (48, 64) and spec.max_tokens == 112 and spec.token_choices == (112,)
    assert spec.codebook_sizes == (256,) and spec.grid == (8, 8)
    codes = tok.encode(photos64)
    assert codes.indices.shape == (2, 112, 1) and codes.scales == (48, 64) and int(codes.bits()[0]) == 112 * 8
    means = torch.nn.functional.avg_pool2d(photos64, 16)  # [2, 3, 4, 4]
    assert torch.equal(codes.indices[:, :48, 0], means.mul(255).round().long().flatten(1))
    grid_only = zoo.build("convfsq", **{**COLOUR_MAP, "colour_block": 0}).eval()
    grid_only.load_state_dict(tok.state_dict())
    assert torch.equal(codes.indices[:, 48:], grid_only.encode(photos64).indices)  # the same grid tokens
    raw = tok.decode(codes, clamp=False)
    plain = grid_only.decode(grid_only.encode(photos64), clamp=False)
    got = torch.nn.functional.avg_pool2d(raw, 16)
    assert (got - codes.indices[:, :48, 0].reshape(2, 3, 4, 4) / 255).abs().max() < 1e-5
    assert (raw.mean((2, 3)) - photos64.mean((2, 3))).abs().max() <= 0.5 / 255 + 1e-6
    assert (plain.mean((2, 3)) - photos64.mean((2, 3))).abs().max() > 5 / 255  # untrained: way off without the map
    # what the map adds to the grid's decoding is one value per square, upsampled bilinearly (smooth, no seams)
    up = torch.nn.functional.interpolate(torch.eye(4)[:, None], scale_factor=16, mode="linear")[:, 0]  # [4, 64]
    shift = raw - plain
    values = torch.linalg.pinv(up.T) @ shift @ torch.linalg.pinv(up)  # [2, 3, 4, 4]
    assert (up.T @ values @ up - shift).abs().max() < 1e-5 and shift.abs().max() > 5 / 255


def test_colour_map_model_saves_trains_and_refuses_codes_without_the_map(tmp_path, photos64):
    torch.manual_seed(0)
    tok = zoo.build("convfsq", **COLOUR_MAP)
    raw, q = tok(photos64[:, :, :32, :48])  # training crops: any size the squares tile
    assert raw.shape == (2, 3, 32, 48) and q.indices.shape == (2, 4, 6)
    raw.square().mean().backward()
    assert tok.encoder.stem.weight.grad.abs().sum() > 0 and tok.decoder.head.weight.grad.abs().sum() > 0
    tok.eval().save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    codes = again.encode(photos64)
    assert torch.equal(codes.indices, tok.encode(photos64).indices)
    assert torch.equal(again.decode(codes), tok.decode(codes))
    with pytest.raises(ZooError, match="112"):
        again.decode(zoo.Codes(codes.indices[:, 48:], fingerprint=codes.fingerprint, model=codes.model))


@pytest.mark.parametrize("bad", [dict(colour_block=12), dict(colour_block=128), dict(colour_block=-8),
                                 dict(levels=(5, 5, 4))])
def test_colour_map_configs_are_checked(bad):
    with pytest.raises(ConfigError):
        zoo.build("convfsq", **{**COLOUR_MAP, **bad})


@pytest.mark.parametrize("bad", [dict(widths=[8, 16], depths=[0, 1, 1]), dict(levels=[8, 1]),
                                 dict(image_size=60), dict(widths=[0, 16, 32])])
def test_convfsq_bad_configs_are_refused(bad):
    with pytest.raises((ConfigError, ZooError)):
        zoo.build("convfsq", **{**TINY_CONFIG, **bad})


def test_convfsq_trains_on_real_photos(tmp_path):
    """A few hundred pixels of real photos: the pixel loss falls, every code stays usable (no dead codes)."""
    from zoo.train import train

    recipe = {
        "family": "convfsq", "model": {**TINY_CONFIG, "widths": [16, 32, 64]}, "seed": 0, "output": str(tmp_path / "run"),
        "data": {"source": "images", "paths": ["skimage:astronaut", "skimage:coffee", "skimage:chelsea"],
                 "crop_size": 32, "resize_range": [64, 128], "batch_size": 8, "cache_shorter": 128},
        "loss": {"l2": 1.0, "quantizer": 0.0},
        "optim": {"name": "adam", "lr": 2e-3},
        "train": {"max_steps": 80, "log_every": 10, "save_every": 80, "threads": 1},
    }
    psnrs = {}
    result = train(recipe, quiet=True, callback=lambda step, logs: psnrs.setdefault(step // 10, logs["psnr"]) and False
                   if step % 10 == 0 else False)
    assert psnrs[8] > psnrs[1] + 1, psnrs
    tok = zoo.load(result.model_dir)
    from conftest import photo_batch

    codes = tok.encode(photo_batch(64, ("astronaut", "coffee", "chelsea")))
    assert codebook_usage(codes.indices, tok.spec.codebook_sizes)[0]["used"] > 10


def test_half_size_storage_loads_back_in_float32(tmp_path, photos64):
    """save_pretrained(storage_dtype="float16") halves the file (the embedded default ships so); loading computes in
    float32 with the rounded weights."""
    tok = zoo.build("convfsq", **{**TINY_CONFIG, "widths": [16, 32, 64]}).eval()
    tok.save_pretrained(tmp_path / "full")
    tok.save_pretrained(tmp_path / "half", storage_dtype="float16")
    full = (tmp_path / "full" / "model.safetensors").stat().st_size
    half = (tmp_path / "half" / "model.safetensors").stat().st_size
    assert half < 0.55 * full
    again = zoo.load(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in again.parameters())
    for (name, a), b in zip(tok.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a.half().float(), b), name
    with pytest.raises(ZooError):
        tok.save_pretrained(tmp_path / "bad", storage_dtype="int8")


def test_growing_a_quantizer_channel_keeps_the_function_then_trains(tmp_path, photos64):
    """`train.grow`: a 4th FSQ channel added to a trained 3-channel model (the default's stage 3) is read with zero weights, so
    the grown model reconstructs exactly as the small one; a few steps of training then use the new channel."""
    from zoo.train import train
    from zoo.train.trainer import grow_from

    torch.manual_seed(0)
    small = zoo.build("convfsq", **TINY_CONFIG).eval()
    for p in small.parameters():  # no zero biases / unit norms: every copied value is checked
        p.data.normal_(0, 0.3)
    large = grow_from(small, zoo.build("convfsq", **{**TINY_CONFIG, "levels": (5, 5, 4, 4)})).eval()
    assert large.spec.codebook_sizes == (400,) and small.spec.codebook_sizes == (100,)
    assert torch.equal(small.decode(small.encode(photos64)), large.decode(large.encode(photos64)))
    with pytest.raises(ConfigError, match="can only grow"):
        grow_from(large, zoo.build("convfsq", **TINY_CONFIG))

    torch.manual_seed(0)
    zoo.build("convfsq", **TINY_CONFIG).save_pretrained(tmp_path / "small")  # its own initialisation
    recipe = {
        "family": "convfsq", "model": {"levels": [5, 5, 4, 4]}, "seed": 0, "output": str(tmp_path / "run"),
        "data": {"source": "images", "paths": ["skimage:astronaut", "skimage:coffee"], "crop_size": 32,
                 "resize_range": [64, 96], "batch_size": 4, "cache_shorter": 96, "saturation": [1.0, 1.5]},
        "loss": {"l2": 1.0, "colour": 5.0, "quantizer": 0.0},
        "optim": {"name": "adam", "lr": 2e-3},
        "train": {"init": str(tmp_path / "small"), "grow": True, "max_steps": 6, "log_every": 3, "save_every": 6,
                  "threads": 1},
    }
    logs = []
    result = train(recipe, quiet=True, callback=lambda step, entry: logs.append(entry) and False)
    assert "loss/colour" in logs[-1]
    grown = zoo.load(result.model_dir)
    assert grown.spec.codebook_sizes == (400,)
    assert float(large.decoder.head.weight.detach()[:, 3:].abs().max()) == 0  # nothing new reached the outputs at first
    assert float(grown.decoder.head.weight.detach()[:, 3:].abs().max()) > 1e-4  # training connected the new channel
    with pytest.raises(ConfigError, match="grow needs train.init"):
        train({**recipe, "train": {"grow": True, "max_steps": 1}}, quiet=True)
