"""Open-MAGVIT2 (LFQ) against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/open_magvit2/README.md says how they were made): TencentARC/SEED-Voken at
b9a17eac8e2c0779c12a5429b0bfd6c502788484 (src/Open_MAGVIT2/modules/diffusionmodules/improved_model.py Encoder /
Decoder, src/Open_MAGVIT2/modules/vqvae/lookup_free_quantize.py LFQ, src/Open_MAGVIT2/modules/ema.py LitEma):
key/shape manifests of the four released configs, and a tiny random-weight Lightning-style checkpoint (EMA and raw
weights differ) at a size no release has (32 px, widths 64/32, 10 bits) with the official outputs on real photos.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import CheckpointError
from zoo.config import config_from_dict
from zoo.convert.common import check_state_dict, drop, load_file as load_checkpoint, meta_state_dict
from zoo.images import prepare
from zoo.quant import LookupFreeQuantizer
from zoo.registry import get_entry, get_family

D = Path(__file__).parent / "fixtures" / "open_magvit2"
ATOL = 1e-4
TINY_YAML = {"model": {"init_args": {
    "ddconfig": {"double_z": False, "z_channels": 10, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                 "ch_mult": [2, 1], "num_res_blocks": 1},
    "n_embed": 1024, "embed_dim": 10}}}
RELEASED = {"open-magvit2-256": (256, 18, 115_127_829), "open-magvit2-128": (128, 18, 112_021_653),
            "open-magvit2-pretrain-16384": (256, 14, 115_094_033),
            "open-magvit2-pretrain-262144": (256, 18, 115_127_829)}


@pytest.fixture(scope="module")
def tiny():
    return zoo.from_official("open_magvit2", D / "tiny_official.ckpt", TINY_YAML).eval()


@pytest.fixture(scope="module")
def io():
    return load_file(str(D / "tiny_io.safetensors"))


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_manifest_loads_strictly(name):
    """Every released key is consumed (EMA copy) or skipped by name; parameter count equals the official one."""
    info = json.loads((D / "manifest.json").read_text())["models"][name]
    official = meta_state_dict(info["keys"])
    spec = get_family("open_magvit2")
    config = config_from_dict(spec.config_cls, dict(get_entry(name).config))
    assert spec.config_from_official(info["official_config"], official) == config
    kept, dropped = drop(official, spec.skip)
    assert dropped == ["model_ema.decay", "model_ema.num_updates"]
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(kept, config), f"{name} manifest")
    size, bits, params = RELEASED[name]
    assert sum(p.numel() for p in model.parameters()) == info["num_params"] == params
    assert model.spec.grid == (16, 16) and model.spec.codebook_sizes == (2 ** bits,)
    assert model.spec.image_size == size and model.spec.eval_crop == "center-bilinear"


def test_registered_models_carry_hub_files_and_published_numbers():
    entry = get_entry("open-magvit2-256")
    assert (entry.hub_repo, entry.hub_file) == ("TencentARC/Open-MAGVIT2-Tokenizer-256-resolution",
                                                "imagenet_256_L.ckpt")
    rfid = next(m for m in entry.metrics if m.name == "rFID")
    assert rfid.value == 1.17 and "bilinear" in rfid.protocol and "EMA" in rfid.protocol
    assert next(m for m in get_entry("open-magvit2-128").metrics if m.name == "rFID").value == 1.18


def test_tiny_checkpoint_loads_weights_only_and_uses_the_ema_copy(tiny):
    raw = load_checkpoint(D / "tiny_official.ckpt")  # a Lightning-layout pickle, weights_only=True
    sd = raw["state_dict"]
    assert torch.equal(tiny.encoder.conv_in.weight, sd["model_ema.encoderconv_inweight"])
    assert not torch.equal(tiny.encoder.conv_in.weight, sd["encoder.conv_in.weight"])
    # a state dict without EMA loads its raw weights; an EMA copy with a missing entry is refused
    plain = {k: v for k, v in sd.items() if not k.startswith("model_ema.")}
    assert torch.equal(zoo.from_official("open_magvit2", plain, TINY_YAML).encoder.conv_in.weight,
                       sd["encoder.conv_in.weight"])
    broken = {k: v for k, v in sd.items() if k != "model_ema.decoderconv_outbias"}
    with pytest.raises(CheckpointError, match="EMA"):
        zoo.from_official("open_magvit2", broken, TINY_YAML)
    with pytest.raises(CheckpointError, match="n_embed"):
        zoo.from_official("open_magvit2", sd, {"model": {"init_args": {"n_embed": 2048}}})


def test_tiny_parity_indices_and_images(tiny, io):
    """Identical indices; latents and images within 1e-4 of the official encoder / decoder."""
    assert tiny.config.image_size == 32 and tiny.spec.grid == (16, 16)
    assert torch.allclose(tiny.encode_latents(io["images"]), io["latents"], atol=ATOL)
    codes = tiny.encode(io["images"])
    assert torch.equal(codes.indices[..., 0], io["indices"])
    assert torch.allclose(tiny.decode(codes, clamp=False), io["decoded_codes_raw"], atol=ATOL)
    assert torch.allclose(tiny.decode(codes), io["decoded_codes_raw"].clamp(0, 1), atol=ATOL)
    assert torch.allclose(io["decoded_raw"], io["decoded_codes_raw"], atol=ATOL)


def test_latent_api_is_differentiable_and_matches_decode(tiny, io):
    x = io["images"].clone().requires_grad_(True)
    z = tiny.encode_latents(x)
    codes, q = tiny.quantize(z)
    assert torch.equal(codes.indices, tiny.encode(io["images"]).indices)
    assert torch.allclose(q, io["quant"], atol=1e-6)  # exactly +-1 up to the straight-through rounding
    out = tiny.decode_latents(q)
    assert torch.allclose(out, tiny.decode(tiny.encode(io["images"]), clamp=False), atol=1e-5)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lfq_bits_and_entropy_losses_match_official(io):
    lfq = LookupFreeQuantizer(10, beta=0.25)
    z = io["latents"].permute(0, 2, 3, 1)
    out = lfq(z)
    assert torch.equal(out.indices.reshape(2, -1), io["indices"])
    assert torch.allclose(out.commitment_loss, io["commitment"][0], rtol=1e-5)
    per_sample, codebook = lfq.entropy_terms(z)
    assert torch.allclose(per_sample, io["per_sample_entropy"][0], rtol=1e-4, atol=1e-6)
    assert torch.allclose(codebook, io["codebook_entropy"][0], rtol=1e-5)
    assert torch.allclose(per_sample - codebook, io["entropy_aux_loss"][0], rtol=1e-5)
    # channel 0 is the least significant bit; 0 maps to -1
    assert lfq.quantize(torch.tensor([[1.0, -1, 0, 0, 0, 0, 0, 0, 0, 2]])).tolist() == [1 + 512]
    assert torch.equal(lfq.lookup(torch.tensor([3])), torch.tensor([[1.0, 1] + [-1.0] * 8]))
    with pytest.raises(ValueError, match="10 bits"):
        lfq.quantize(torch.zeros(3, 4))


def test_official_eval_crop_is_torchvision_bilinear():
    import torchvision.transforms as T
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.coffee())
    ours = prepare(image, 48, "center-bilinear")
    assert torch.equal(ours, T.ToTensor()(T.CenterCrop(48)(T.Resize(48)(image))))


def test_tiny_recipe_trains_with_the_entropy_loss(tmp_path):
    """recipes/open_magvit2/tiny.yaml: a few CPU steps on real photos; the entropy terms are logged."""
    import json as _json

    from zoo.train import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "open_magvit2" / "tiny.yaml"
    result = train(recipe, ["train.max_steps=6", "train.log_every=3", "train.save_every=6", "train.threads=1"],
                   output=tmp_path / "run", quiet=True)
    log = [_json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6]
    assert log[-1]["loss/l1"] < log[0]["loss/l1"]
    assert log[-1]["entropy/codebook"] > log[-1]["entropy/per_sample"] > 0
    assert "loss/entropy" in log[-1] and "loss/quantizer" in log[-1]
    tok = zoo.load(result.model_dir)
    assert tok.family == "open_magvit2" and tok.encode(torch.rand(1, 3, 32, 32)).indices.shape == (1, 64, 1)
