"""Your own tokenizer (docs/your-tokenizer.md): zoo.wrap, `-m FILE.py:build` / `-m module:build`, and the guide's
examples (examples/my_tokenizer.py, examples/my_family.py) run as written."""
from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import pytest
import torch

import zoo
from conftest import photo_batch
from zoo import InputError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my_tokenizer.py"


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(EXAMPLE))


def test_wrapped_model_behaves_like_a_zoo_tokenizer(example):
    tok = example["build"]()
    x = photo_batch(256)
    spec = tok.spec
    assert (spec.family, spec.token_layout, spec.grid, spec.codebook_sizes) == ("wrapped", "2d", (32, 32), (64,))
    codes = tok.encode(x)
    assert codes.indices.shape == (2, 1024, 1) and codes.model == "palette-vq" and codes.bits().tolist() == [6144] * 2
    recon = tok.decode(codes)
    net = tok.model
    torch.testing.assert_close(recon, net.decode(net.encode(x)).clamp(0, 1), atol=0, rtol=0)
    assert zoo.eval.psnr((x * 255).round(), (recon * 255).round()).min() > 15  # a real (if simple) tokenizer
    # the differentiable path given to wrap: same images as decode(encode(x)), gradients to the input
    xg = x[:1].clone().requires_grad_(True)
    q_codes, quantized = tok.quantize(tok.encode_latents(xg))
    out = tok.decode_latents(quantized)
    assert torch.equal(q_codes.indices, codes.indices[:1])
    torch.testing.assert_close(out, tok.decode(codes[:1], clamp=False), atol=1e-6, rtol=0)
    out.sum().backward()
    assert xg.grad.abs().sum() > 0
    # a wrapped model has no family to be rebuilt from
    with pytest.raises(InputError, match="register it as a family"):
        tok.save_pretrained("nowhere")


def test_wrap_checks_what_it_is_given():
    net = torch.nn.Identity()
    with pytest.raises(InputError, match="needs encode= and decode="):
        zoo.wrap(net, image_size=32, codebook_size=8)
    floats = zoo.wrap(encode=lambda x: x.mean(1), decode=lambda i: i, image_size=32, codebook_size=8)
    with pytest.raises(InputError, match="encode must return integer indices"):
        floats.encode(photo_batch(32))
    groups = zoo.wrap(encode=lambda x: torch.zeros(x.shape[0], 5, 2, dtype=torch.long),
                      decode=lambda i: torch.zeros(i.shape[0], 3, 32, 32), image_size=32, codebook_size=(4, 8))
    codes = groups.encode(photo_batch(32))
    assert codes.indices.shape == (2, 5, 2) and groups.spec.token_layout == "1d"
    assert groups.decode(codes).shape == (2, 3, 32, 32)
    with pytest.raises(NotImplementedError, match="encode_latents="):
        groups.encode_latents(photo_batch(32))


def test_load_builds_from_a_file_or_a_module(monkeypatch):
    assert zoo.load(f"{EXAMPLE}:build").name == "palette-vq"
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    assert zoo.load("my_tokenizer:build").spec.max_tokens == 1024
    with pytest.raises(InputError, match="has no 'nope'"):
        zoo.load("my_tokenizer:nope")
    with pytest.raises(InputError, match="not a zoo.Tokenizer: return zoo.wrap"):
        zoo.load("my_tokenizer:PaletteVQ")
    with pytest.raises(InputError, match="cannot import"):
        zoo.load("no_such_module_here:build")


def test_guide_example_evaluates_beside_a_zoo_model(model_dir, tmp_path, capsys):
    """docs/your-tokenizer.md step 3: one `zoo eval` over the user's file and a zoo model writes one report."""
    from PIL import Image

    from zoo.cli import main

    data = tmp_path / "photos"
    data.mkdir()
    for i, name in enumerate(("astronaut", "coffee")):
        Image.fromarray((photo_batch(256, (name,))[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(
            data / f"{i}.png")
    out = tmp_path / "my-report"
    rc = main(["eval", "-m", f"{EXAMPLE}:build,{model_dir}", "--data", str(data), "--metrics", "psnr,ssim,usage",
               "-o", str(out), "-q", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    mine, vqgan = json.loads((out / "report.json").read_text())["results"]
    assert mine["model"] == "palette-vq" and mine["bits_per_image"] == 6144 and mine["psnr"] > 15
    assert vqgan["family"] == "vqgan" and mine["images"] == vqgan["images"] == 2
    assert "palette-vq" in (out / "report.md").read_text()


def test_family_example_registers_saves_and_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "examples" / "my_family.py"), run_name="__main__")
    assert (tmp_path / "palette-folder" / "model.safetensors").is_file()
    tok = zoo.load(tmp_path / "palette-folder")
    assert tok.family == "palette" and zoo.get_entry("palette-64").family == "palette"
    x = photo_batch(256)[:1].requires_grad_(True)
    _, quantized = tok.quantize(tok.encode_latents(x))
    tok.decode_latents(quantized).sum().backward()
    assert x.grad.abs().sum() > 0
