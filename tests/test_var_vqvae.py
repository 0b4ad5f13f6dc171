"""VAR's multi-scale VQVAE against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/var_vqvae/README.md says how they were made): FoundationVision/VAR at
78b95394fc5896192e3a003e4b295f8ea743c48f (models/vqvae.py `VQVAE`, models/basic_vae.py, models/quant.py
`VectorQuantizer2`): the released VQVAE's key/shape manifest, and a non-released tiny `VQVAE` with random weights
(6 scales up to 8x8) with its features, multi-scale indices, decodes, prefix decodes, teacher-forcing input and
training loss on three real photos. The released generators VAR-d16 ... d30 (tests/fixtures/var/
manifest_foundationvision.json) load strictly into `zoo.generate`'s VAR.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import CheckpointError, Codes, ConfigError, InputError
from zoo.config import config_from_dict
from zoo.convert import var as convert_generator
from zoo.convert import var_vqvae as convert
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.families.var_vqvae import TINY_CONFIG, VARVQVAE
from zoo.generate.registry import get_generator_entry
from zoo.images import load_images
from zoo.nn.var import NextScaleTransformer
from zoo.registry import get_entry, get_family

FIX = Path(__file__).parent / "fixtures"
F = FIX / "var_vqvae"
ATOL = 1e-4
SCALES = {"v_patch_nums": [1, 2, 3, 4, 6, 8]}


@pytest.fixture(scope="module")
def tiny():
    tok = zoo.from_official("var-vqvae", F / "tiny_official.safetensors", SCALES).float().eval()
    return tok, load_file(str(F / "tiny_io.safetensors"))


def test_released_manifest_loads_strictly():
    info = json.loads((F / "manifest.json").read_text())["models"]["var-vqvae"]
    official = meta_state_dict(info["keys"])
    spec = get_family("var-vqvae")
    config = config_from_dict(spec.config_cls, dict(get_entry("var-vqvae").config))
    assert spec.config_from_official({"v_patch_nums": info["official_config"]["v_patch_nums"]}, official) == config
    assert spec.config_from_official(None, official) == config  # the default schedule is the release's
    kept, dropped = drop(official, spec.skip)
    assert dropped == ["quantize.ema_vocab_hit_SV"]
    with torch.device("meta"):
        model = VARVQVAE(config)
    check_state_dict(model, convert.convert_state_dict(kept, config), source="vae_ch160v4096z32 manifest")
    assert sum(p.numel() for p in model.parameters()) == info["num_params"] == 108_948_355
    assert model.spec.max_tokens == 680 and model.spec.scales[-1] == 256
    assert model.quantizer.phi_index == (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)


@pytest.mark.parametrize("depth", [16, 20, 24, 30])
def test_released_generators_load_strictly(depth):
    """VAR-d16 ... d30 (var_d{depth}.pth: plain state dicts) fit the registered generator configs."""
    info = json.loads((FIX / "var" / "manifest_foundationvision.json").read_text())["models"][f"var-d{depth}"]
    entry = get_generator_entry(f"var-d{depth}")
    assert entry.tokenizer == "var-vqvae"
    official = meta_state_dict(info["keys"])
    kwargs = convert_generator.config_from_official(info["official_config"], official)
    ours = {k: v for k, v in entry.config.items() if k != "groups"}
    assert kwargs == {**ours, "scales": tuple(ours["scales"])}
    kept, _ = drop(official, convert_generator.SKIP)
    with torch.device("meta"):
        m = NextScaleTransformer(**kwargs)
    check_state_dict(m, convert_generator.convert_state_dict(kept), source=f"VAR-d{depth} manifest")
    # upstream counts the zero key biases as buffers; ours hold them inside qkv.bias
    assert sum(p.numel() for p in m.parameters()) == info["num_params"] + depth * depth * 64


def test_tiny_config_is_the_fixture_size(tiny):
    tok, _ = tiny
    assert {k: getattr(tok.config, k) for k in TINY_CONFIG} == TINY_CONFIG


def test_official_crop_gives_the_fixture_inputs(tiny):
    import skimage.data

    tok, io = tiny
    assert tok.spec.eval_crop == "var"
    photos = [getattr(skimage.data, p)() for p in ("astronaut", "coffee", "chelsea")]
    assert torch.equal(load_images(photos, size=32, crop="var"), io["images"])  # bit-exact with torchvision


def test_tiny_parity_indices_images_and_prefixes(tiny):
    tok, io = tiny
    codes = tok.encode(io["images"])
    assert codes.scales == (1, 4, 9, 16, 36, 64) and torch.equal(codes.indices[..., 0], io["indices"])
    torch.testing.assert_close(tok.decode(codes, clamp=False) * 2 - 1, io["decoded"], atol=ATOL, rtol=0)
    torch.testing.assert_close(tok.decode(codes) * 2 - 1, io["reconstruction"], atol=ATOL, rtol=0)
    prefix = tok.encode(io["images"], num_tokens=5)  # the first two scales
    assert prefix.scales == (1, 4) and torch.equal(prefix.indices, codes.indices[:, :5])
    torch.testing.assert_close(tok.decode(prefix) * 2 - 1, io["prefix2_images"], atol=ATOL, rtol=0)
    with pytest.raises(InputError, match="whole scales"):
        tok.decode(Codes(codes.indices[:, :7]))


def test_tiny_latent_api_and_training_loss(tiny):
    tok, io = tiny
    x = io["images"].clone().requires_grad_(True)
    latents = tok.encode_latents(x)
    torch.testing.assert_close(latents, io["latents"], atol=ATOL, rtol=0)
    codes, f_hat = tok.quantize(latents)
    assert torch.equal(codes.indices[..., 0], io["indices"]) and f_hat.shape == latents.shape
    torch.testing.assert_close(f_hat, io["train_f_hat"], atol=ATOL, rtol=0)
    images = tok.decode_latents(f_hat)
    images.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(images, tok.decode(tok.encode(io["images"]), clamp=False), atol=ATOL, rtol=0)
        _, q = tok(io["images"])
    torch.testing.assert_close(q.loss.reshape(1), io["vq_loss"], atol=1e-6, rtol=1e-5)


def test_generator_inputs_match_the_official_ones(tiny):
    tok, io = tiny
    codes = tok.encode(io["images"])
    torch.testing.assert_close(tok.teacher_forcing_input(codes), io["var_input"], atol=1e-5, rtol=0)
    # sampling's step-by-step input (get_next_autoregressive_input) agrees with teacher forcing
    state, parts, start = None, [], 0
    for si, p in enumerate(tok.config.scale_sides):
        state, nxt = tok.next_scale_input(state, si, [codes.indices[:, start:start + p * p, 0]])
        start += p * p
        if nxt is not None:
            parts.append(nxt)
    torch.testing.assert_close(torch.cat(parts, 1), io["var_input"], atol=1e-5, rtol=0)
    torch.testing.assert_close(state, io["f_hat"], atol=1e-5, rtol=0)


def test_bad_official_files():
    sd = load_file(str(F / "tiny_official.safetensors"))
    with pytest.raises(ConfigError, match="last scale"):
        zoo.from_official("var-vqvae", sd, {"v_patch_nums": [1, 2, 4]}, image_size=32)
    with pytest.raises(ConfigError, match="side lengths"):
        convert.config_from_official({"pn": "256px"}, sd)
    no_phi = {k: v for k, v in sd.items() if "quant_resi" not in k}
    with pytest.raises(CheckpointError, match="φ"):
        convert.config_from_official(SCALES, no_phi)
    state, _ = convert.extract({"trainer": {"vae_local": sd, "var_wo_ddp": {}}})
    assert state.keys() == sd.keys()


def test_a_var_generator_samples_through_the_vqvae(tiny):
    """`zoo generate`'s VAR generator pairs with this tokenizer (one codebook: groups=1)."""
    from zoo.generate.var import VARConfig, VARGenerator, VARSampling

    tok, _ = tiny
    torch.manual_seed(0)
    gen = VARGenerator(VARConfig(scales=list(tok.config.scale_sides), code_dim=8, vocab=64, num_classes=10, width=32,
                                 depth=1, heads=2, groups=1), VARSampling(guidance=1.5, top_k=20, top_p=0.96)).eval()
    labels = torch.tensor([1, 7])
    codes = gen.attach(tok).sample(labels, seed=3)
    assert codes.indices.shape == (2, 130, 1) and codes.scales == tok.spec.scales
    images = gen.generate_images(tok, labels, seed=3)
    assert images.shape == (2, 3, 32, 32)
    torch.testing.assert_close(images, tok.decode(codes), atol=1e-5, rtol=0)
    wrong = VARGenerator(VARConfig(scales=[1, 2, 8], code_dim=8, vocab=64, num_classes=10, width=32, depth=1,
                                   heads=2, groups=1))
    with pytest.raises(InputError, match="scales"):
        wrong.attach(tok)


def test_tiny_recipe_trains_on_cpu(tmp_path):
    from zoo.train import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "var-vqvae" / "tiny.yaml"
    result = train(recipe, ["train.max_steps=4", "train.save_every=4", "train.log_every=2", "train.threads=1"],
                   output=tmp_path / "run", quiet=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and all(r["loss/quantizer"] > 0 for r in log)
    tok = zoo.load(result.model_dir)
    assert tok.family == "var-vqvae" and tok.reconstruct(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ConfigError, match="crop_size 16 must equal"):
        train(recipe, ["data.crop_size=16"], output=tmp_path / "bad", quiet=True)
