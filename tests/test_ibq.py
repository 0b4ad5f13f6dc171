"""IBQ against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/ibq/README.md says how they were made): TencentARC/SEED-Voken at
b9a17eac8e2c0779c12a5429b0bfd6c502788484 (src/IBQ/modules/diffusionmodules/model.py Encoder / Decoder,
src/IBQ/modules/vqvae/quantize.py IndexPropagationQuantize, src/IBQ/modules/ema.py LitEma): key/shape manifests of
the six released configs, and a tiny random-weight Lightning-style checkpoint (no EMA: ``use_ema: False``) at a
size no release has (32 px, widths 64/32, attention at 16x16, 64 codes of 16) with the official outputs and losses.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import CheckpointError
from zoo.config import config_from_dict
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.quant import IndexBackpropQuantizer
from zoo.registry import get_entry, get_family

D = Path(__file__).parent / "fixtures" / "ibq"
ATOL = 1e-4
TINY_YAML = {"model": {"init_args": {
    "ddconfig": {"double_z": False, "z_channels": 32, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                 "ch_mult": [2, 1], "num_res_blocks": 1, "attn_resolutions": [16], "dropout": 0.0},
    "n_embed": 64, "embed_dim": 16, "beta": 0.25}}}
RELEASED = {"ibq-1024": 107_049_859, "ibq-8192": 108_884_867, "ibq-16384": 110_982_019,
            "ibq-262144": 173_896_579, "ibq-pretrain-16384": 110_982_019, "ibq-pretrain-262144": 173_896_579}


@pytest.fixture(scope="module")
def tiny():
    return zoo.from_official("ibq", D / "tiny_official.ckpt", TINY_YAML).eval()


@pytest.fixture(scope="module")
def io():
    return load_file(str(D / "tiny_io.safetensors"))


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_manifest_loads_strictly(name):
    """Every released key is consumed (EMA copy, q/k/v fused) or skipped by name; official parameter count."""
    info = json.loads((D / "manifest.json").read_text())["models"][name]
    official = meta_state_dict(info["keys"])
    spec = get_family("ibq")
    config = config_from_dict(spec.config_cls, dict(get_entry(name).config))
    assert spec.config_from_official(info["official_config"], official) == config
    kept, dropped = drop(official, spec.skip)
    assert dropped == ["model_ema.decay", "model_ema.num_updates"]
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(kept, config), f"{name} manifest")
    assert sum(p.numel() for p in model.parameters()) == info["num_params"] == RELEASED[name]
    assert model.spec.grid == (16, 16) and model.spec.codebook_sizes == (config.codebook_size,)


def test_registered_models_carry_hub_files_and_published_numbers():
    for k, rfid in ((1024, 2.24), (8192, 1.87), (16384, 1.37), (262144, 1.00)):
        entry = get_entry(f"ibq-{k}")
        assert (entry.hub_repo, entry.hub_file) == (f"TencentARC/IBQ-Tokenizer-{k}", f"imagenet256_{k}.ckpt")
        metric = next(m for m in entry.metrics if m.name == "rFID")
        assert metric.value == rfid and "SmallestMaxSize" in metric.protocol
    assert get_entry("ibq-pretrain-262144").hub_file == "IBQ_pretrain_262144.ckpt"


def test_tiny_parity_indices_and_images(tiny, io):
    """Identical indices; latents and images within 1e-4 of the official model."""
    assert tiny.config.image_size == 32 and tiny.config.level_attention and tiny.spec.grid == (16, 16)
    assert torch.allclose(tiny.encode_latents(io["images"]), io["latents"], atol=ATOL)
    codes = tiny.encode(io["images"])
    assert torch.equal(codes.indices[..., 0], io["indices"])
    assert torch.allclose(tiny.decode(codes, clamp=False), io["decoded_codes_raw"], atol=ATOL)
    assert torch.allclose(tiny.decode(codes), io["decoded_codes_raw"].clamp(0, 1), atol=ATOL)
    assert torch.allclose(io["decoded_raw"], io["decoded_codes_raw"], atol=ATOL)


def test_latent_api_is_differentiable_and_matches_decode(tiny, io):
    x = io["images"].clone().requires_grad_(True)
    codes, q = tiny.quantize(tiny.encode_latents(x))
    assert torch.equal(codes.indices[..., 0], io["indices"])
    assert torch.allclose(q, io["quant"], atol=1e-5)
    out = tiny.decode_latents(q)
    assert torch.allclose(out, tiny.decode(codes, clamp=False), atol=1e-5)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_index_backpropagation_losses_and_gradients_match_official(tiny, io):
    q = IndexBackpropQuantizer(64, 16, beta=0.25)
    q.embedding.weight.data.copy_(tiny.quantizer.embedding.weight)
    z = io["latents"].permute(0, 2, 3, 1)
    out = q(z)
    assert torch.equal(out.indices.reshape(2, -1), io["indices"])
    assert torch.allclose(out.loss, io["quant_loss"][0], rtol=1e-5)
    per_sample, codebook = q.entropy_terms(z)
    assert torch.allclose(per_sample, io["per_sample_entropy"][0], rtol=1e-3, atol=1e-6)
    assert torch.allclose(codebook, io["codebook_entropy"][0], rtol=1e-5)
    assert torch.allclose(per_sample - codebook, io["entropy_loss"][0], rtol=1e-5)
    # the point of IBQ: the quantized vectors' gradient reaches every codebook row, not only the chosen ones
    q.embedding.weight.grad = None
    q(z).quantized.sum().backward()
    unused = torch.ones(64, dtype=torch.bool)
    unused[io["indices"].unique()] = False
    assert unused.any() and (q.embedding.weight.grad[unused].abs().sum(-1) > 0).all()


def test_converter_refuses_what_it_cannot_map(io):
    from zoo.convert.common import load_file as load_checkpoint

    sd = load_checkpoint(D / "tiny_official.ckpt")["state_dict"]
    broken = {k: v for k, v in sd.items() if k != "decoder.mid.attn_1.k.weight"}
    with pytest.raises(CheckpointError, match="q, k and v"):
        zoo.from_official("ibq", broken, TINY_YAML)
    with pytest.raises(CheckpointError, match="unexpected official key"):
        zoo.from_official("ibq", {**sd, "other.weight": torch.zeros(1)}, TINY_YAML)
    with pytest.raises(CheckpointError, match="n_embed|codebook_size"):
        zoo.from_official("ibq", sd, {"model": {"init_args": {"n_embed": 128}}})


def test_tiny_recipe_trains_with_ibq_losses(tmp_path):
    """recipes/ibq/tiny.yaml: a few CPU steps on real photos with the quantization and entropy losses."""
    from zoo.train import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "ibq" / "tiny.yaml"
    result = train(recipe, ["train.max_steps=6", "train.log_every=3", "train.save_every=6", "train.threads=1"],
                   output=tmp_path / "run", quiet=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6]
    assert log[-1]["loss/l1"] < log[0]["loss/l1"]
    assert "loss/entropy" in log[-1] and "loss/quantizer" in log[-1]
    tok = zoo.load(result.model_dir)
    assert tok.family == "ibq" and tok.encode(torch.rand(1, 3, 32, 32)).indices.shape == (1, 256, 1)


def test_official_eval_crop_is_albumentations_on_opencv(io):
    """The 'albumentations' crop gives the official preprocessing of the fixture photos (needs OpenCV)."""
    pytest.importorskip("cv2")
    from skimage import data

    from zoo.images import prepare

    ours = torch.stack([prepare(data.astronaut(), 32, "albumentations"), prepare(data.coffee(), 32, "albumentations")])
    assert torch.allclose(ours, io["images"], atol=1e-6)
    assert get_entry("ibq-16384") and tiny_spec_crop() == "albumentations"
    albumentations = pytest.importorskip("albumentations")
    for image in (data.chelsea(), data.rocket()):  # non-square: rounding of the long side, crop offsets
        tf = albumentations.Compose([albumentations.SmallestMaxSize(max_size=256),
                                     albumentations.CenterCrop(height=256, width=256)])
        expected = torch.from_numpy(tf(image=image)["image"]).permute(2, 0, 1).float() / 255
        assert torch.equal(prepare(image, 256, "albumentations"), expected)


def tiny_spec_crop() -> str:
    from zoo.families.ibq import IBQ, IBQConfig, TINY_CONFIG

    with torch.device("meta"):
        return IBQ(IBQConfig(**TINY_CONFIG)).spec.eval_crop


def test_zoo_eval_uses_each_familys_official_crop(tmp_path, tiny):
    """One harness for both SEED-Voken families: `zoo eval` reports PSNR / usage with each model's own crop."""
    from PIL import Image
    from skimage import data

    from zoo.errors import MissingExtraError
    from zoo.eval import EvalConfig, Evaluator
    from zoo.families.open_magvit2 import OpenMagvit2, OpenMagvit2Config

    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).save(tmp_path / f"{name}.png")
    torch.manual_seed(0)
    lfq = OpenMagvit2(OpenMagvit2Config(image_size=32, hidden_channels=32, channel_mult=(1, 1), num_res_blocks=1,
                                        bits=10)).eval()
    config = EvalConfig(metrics=("psnr", "usage"), batch_size=2)
    res = Evaluator(str(tmp_path), config).run(lfq)
    assert res["crop"] == "center-bilinear" and res["images"] == 2 and res["usage"][0]["codebook_size"] == 1024
    assert res["family"] == "open_magvit2" and res["tokens_per_image"] == 256 and res["psnr"] > 0
    try:
        import cv2  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match="opencv"):
            Evaluator(str(tmp_path), config).run(tiny)
        return
    res = Evaluator(str(tmp_path), config).run(tiny)
    assert res["crop"] == "albumentations" and res["family"] == "ibq" and res["usage"][0]["codebook_size"] == 64
