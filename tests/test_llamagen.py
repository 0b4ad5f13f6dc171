"""LlamaGen VQ tokenizers against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/llamagen/README.md says how they were made): FoundationVision/LlamaGen at
ce98ec41803a74a90ce68c40ababa9eaeffeb4ec (tokenizer/tokenizer_image/vq_model.py `VQModel`, `VQ_models`): the key/
shape manifests of VQ-16 and VQ-8 (the t2i tokenizer is VQ-16), and a non-released tiny `VQModel` with random
weights with its latents, indices and decodes of three real photos.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import CheckpointError
from zoo.config import config_from_dict
from zoo.convert import llamagen as convert
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.families.llamagen import TINY_CONFIG, LlamaGenVQ
from zoo.images import load_images
from zoo.registry import get_entry, get_family

F = Path(__file__).parent / "fixtures" / "llamagen"
ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny():
    tok = zoo.from_official("llamagen", F / "tiny_official.safetensors", image_size=32).float().eval()
    return tok, load_file(str(F / "tiny_io.safetensors"))


@pytest.mark.parametrize("name", ["llamagen-vq16", "llamagen-vq8", "llamagen-vq16-t2i"])
def test_released_manifest_loads_strictly(name):
    info = json.loads((F / "manifest.json").read_text())["models"][name]
    official = meta_state_dict(info["keys"])
    entry = get_entry(name)
    spec = get_family("llamagen")
    config = config_from_dict(spec.config_cls, dict(entry.config))
    assert spec.config_from_official(info["official_config"], official) == config
    kept, dropped = drop(official, spec.skip)
    assert dropped == ["quantize.codebook_used"]
    with torch.device("meta"):
        model = LlamaGenVQ(config)
    check_state_dict(model, convert.convert_state_dict(kept, config), source=f"{name} manifest")
    assert sum(p.numel() for p in model.parameters()) == info["num_params"]
    assert model.spec.grid == ((16, 16) if "vq16" in name else (32, 32))


def test_tiny_config_is_the_fixture_size(tiny):
    tok, _ = tiny
    assert {k: getattr(tok.config, k) for k in TINY_CONFIG} == TINY_CONFIG


def test_official_crop_gives_the_fixture_inputs(tiny, photos=("astronaut", "coffee", "chelsea")):
    import skimage.data

    tok, io = tiny
    assert tok.spec.eval_crop == "adm"
    images = load_images([getattr(skimage.data, p)() for p in photos], size=32, crop=tok.spec.eval_crop)
    assert torch.equal(images, io["images"])


def test_tiny_parity_indices_and_images(tiny):
    tok, io = tiny
    codes = tok.encode(io["images"])
    assert codes.grid == (8, 8) and codes.indices.shape == (3, 64, 1)
    assert torch.equal(codes.indices[..., 0], io["indices"])
    raw = tok.decode(codes, clamp=False) * 2 - 1
    torch.testing.assert_close(raw, io["decoded_from_indices"], atol=ATOL, rtol=0)
    # the reconstruction script's uint8 images: clamp(127.5x + 128) then truncation
    u8 = torch.clamp(127.5 * raw + 128.0, 0, 255).permute(0, 2, 3, 1).to(torch.uint8)
    assert (u8.int() - io["reconstruction_uint8"].int()).abs().max() <= 1


def test_tiny_latent_api_and_training_forward(tiny):
    tok, io = tiny
    x = io["images"].clone().requires_grad_(True)
    latents = tok.encode_latents(x)
    torch.testing.assert_close(latents, io["latents"], atol=ATOL, rtol=0)
    codes, quantized = tok.quantize(latents)
    assert quantized.shape == latents.shape and torch.equal(codes.indices[..., 0], io["indices"])
    torch.testing.assert_close(quantized, io["quantized"], atol=ATOL, rtol=0)
    images = tok.decode_latents(quantized)
    torch.testing.assert_close(images * 2 - 1, io["decoded_from_quantized"], atol=ATOL, rtol=0)
    images.mean().backward()  # differentiable end to end (straight-through)
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(images, tok.decode(tok.encode(io["images"]), clamp=False), atol=ATOL, rtol=0)
        recon, q = tok.train()(io["images"])
        tok.eval()
    torch.testing.assert_close(q.codebook_loss.reshape(1), io["vq_loss"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(q.commitment_loss.reshape(1), io["commit_loss"], atol=1e-6, rtol=1e-5)


def test_bad_official_files():
    sd = load_file(str(F / "tiny_official.safetensors"))
    with pytest.raises(CheckpointError, match="quant_conv"):
        convert.config_from_official(None, {**sd, "quant_conv.weight": torch.zeros(4, 32, 1, 1)})
    broken = {k: v for k, v in sd.items() if not k.endswith("attn_1.k.weight") and "mid.1.k.weight" not in k}
    with pytest.raises(CheckpointError):
        zoo.from_official("llamagen", broken)
    state, cfg = convert.extract({"model": sd, "optimizer": {}, "steps": 3})
    assert cfg is None and state.keys() == sd.keys()


def test_tiny_recipe_trains_on_cpu(tmp_path):
    from zoo.train import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "llamagen" / "tiny.yaml"
    result = train(recipe, ["train.max_steps=4", "train.save_every=4", "train.log_every=2", "train.threads=1"],
                   output=tmp_path / "run", quiet=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and all(r["loss/quantizer"] > 0 for r in log)
    tok = zoo.load(result.model_dir)
    assert tok.family == "llamagen" and tok.reconstruct(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
