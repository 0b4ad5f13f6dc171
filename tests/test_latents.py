"""The differentiable latent API, the same in every family: encode_latents -> quantize -> decode_latents.

For each family (tiny sizes; random weights, or the tiny official-layout fixtures where a family has them):
- gradients reach the input images and the weights (encoder through the straight-through estimator, decoder);
- the quantized forward equals `decode(encode(x), clamp=False)`: identical indices, images within 1e-4 (the project's
  parity bound: TokenFlow's two paths differ by 1.2e-5 on some machines, fp32 rounding through its decoder).

A new family appends one `(id, factory)` to `CASES`: the factory returns a tiny tokenizer of that family.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

import zoo
from zoo import InputError, Tokenizer
from zoo.families.convfsq import TINY_CONFIG as CONVFSQ_TINY
from conftest import photo_batch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def _recipe_model(family: str) -> Callable[[], Tokenizer]:
    """The tiny model of a family's `recipes/<family>/tiny.yaml`."""
    return lambda: zoo.build(family, yaml.safe_load((ROOT / "recipes" / family / "tiny.yaml").read_text())["model"])


def _fixture(family: str, config: str, **overrides) -> Callable[[], Tokenizer]:
    """The tiny official-layout checkpoint of tests/fixtures/<family> (see its README)."""
    d = FIXTURES / family
    return lambda: zoo.from_official(family, d / "tiny_official.safetensors", d / config, **overrides)


def _built(family: str, config_module: str) -> Callable[[], Tokenizer]:
    """A family's own TINY_CONFIG (zoo.families.<module>.TINY_CONFIG)."""
    import importlib

    return lambda: zoo.build(family, importlib.import_module(f"zoo.families.{config_module}").TINY_CONFIG)


def _diffusers_vqmodel() -> Tokenizer:
    """A tiny VQModel built and saved by diffusers itself, loaded as a zoo model (tests/test_diffusers.py)."""
    import tempfile

    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    net = diffusers.VQModel(block_out_channels=(32, 32), latent_channels=3, norm_num_groups=8, num_vq_embeddings=32,
                            norm_type="spatial", down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, sample_size=32)
    folder = Path(tempfile.mkdtemp(prefix="zoo-test-vqmodel-"))
    net.save_pretrained(folder)
    return zoo.load(folder)


CASES: list[tuple[str, Callable[[], Tokenizer]]] = [
    ("vqgan", _built("vqgan", "vqgan")),
    ("convfsq", _built("convfsq", "convfsq")),
    ("convfsq-colour-map", lambda: zoo.build("convfsq", {**CONVFSQ_TINY, "levels": (8, 8, 4), "colour_block": 16})),
    ("titok", _recipe_model("titok")),
    ("titok-two-stage", _fixture("titok", "tiny_config.yaml", heads=4)),
    ("onedpiece", _recipe_model("onedpiece")),
    ("unitok", _recipe_model("unitok")),
    ("imagefolder", _fixture("imagefolder", "tiny_config.yaml", encoder_heads=4, decoder_heads=2)),
    ("alit", _fixture("alit", "tiny_config.yaml", heads=4)),
    ("diffusers-vqmodel", _diffusers_vqmodel),
    ("open_magvit2", _recipe_model("open_magvit2")),
    ("ibq", _recipe_model("ibq")),
    ("llamagen", _recipe_model("llamagen")),
    ("var-vqvae", _recipe_model("var-vqvae")),
    ("tokenflow", _recipe_model("tokenflow")),
]


def _model(factory: Callable[[], Tokenizer]) -> Tokenizer:
    torch.manual_seed(0)
    return factory().eval()


@pytest.mark.parametrize("factory", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_quantized_forward_equals_encode_decode(factory):
    tok = _model(factory)
    x = photo_batch(tok.spec.image_size)
    codes = tok.encode(x)
    expected = tok.decode(codes, clamp=False)
    latents = tok.encode_latents(x)
    q_codes, quantized = tok.quantize(latents)
    assert quantized.shape == latents.shape
    assert torch.equal(q_codes.indices, codes.indices)
    assert (q_codes.grid, q_codes.scales, q_codes.fingerprint) == (codes.grid, codes.scales, codes.fingerprint)
    images = tok.decode_latents(quantized)
    assert images.shape == x.shape
    torch.testing.assert_close(images, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(tok.decode(q_codes, clamp=False), expected, atol=0, rtol=0)  # codes decode too


@pytest.mark.parametrize("factory", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_gradients_reach_input_and_weights(factory):
    tok = _model(factory)
    x = photo_batch(tok.spec.image_size)[:1].requires_grad_(True)
    tok.zero_grad(set_to_none=True)
    _, quantized = tok.quantize(tok.encode_latents(x))
    tok.decode_latents(quantized).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    touched = {part for name, p in tok.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
               for part in name.split(".")[:2]}  # top-level modules (and the ones of a wrapped network: vae.*)
    assert touched & {"decoder", "base_decoder", "pixel_decoder"}, f"no gradient in a decoder ({sorted(touched)})"
    assert touched & {"encoder", "base_encoder", "pixel_encoder"}, f"no gradient reached the encoder (got {sorted(touched)})"


def test_latent_api_checks_its_inputs():
    tok = _model(CASES[0][1])
    with pytest.raises(InputError, match=r"values in \[0, 1\]"):
        tok.encode_latents(photo_batch(64) * 3)
    with pytest.raises(InputError, match="float tensor"):
        tok.quantize(torch.zeros(1, 32, 4, 4, dtype=torch.int64))
    with pytest.raises(InputError, match="float tensor"):
        tok.decode_latents([1.0])
