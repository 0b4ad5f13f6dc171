"""diffusers' autoencoders as zoo models (zoo/families/diffusers_vae.py), against diffusers itself.

Tiny random-weight `AutoencoderKL` and `VQModel` are built by diffusers 0.42 and written with its own
`save_pretrained` (config.json + diffusion_pytorch_model.safetensors); the zoo loads them by path, with
`from_official`, and by a registered name through the loopback hub (tests/fakehub.py). Our encode / decode must
give diffusers' `encode(2x - 1).latent_dist.mode()` / `(decode(z).sample + 1) / 2` (VQModel: `encode().latents`
quantized by its own codebook, `decode()`).
"""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from conftest import photo_batch
from zoo import InputError, Latents

diffusers = pytest.importorskip("diffusers")

SIZE = 32
BLOCKS = dict(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
              layers_per_block=1, sample_size=SIZE)


def tiny_kl(latent_channels: int = 4) -> "diffusers.AutoencoderKL":
    torch.manual_seed(0)
    return diffusers.AutoencoderKL(block_out_channels=(8, 16), latent_channels=latent_channels, norm_num_groups=4,
                                   **BLOCKS).eval()


def tiny_vq() -> "diffusers.VQModel":
    """MoVQ-style (spatial norm in the decoder, which needs 32 groups: widths 32)."""
    torch.manual_seed(1)
    return diffusers.VQModel(block_out_channels=(32, 32), latent_channels=3, norm_num_groups=8, num_vq_embeddings=32,
                             norm_type="spatial", **BLOCKS).eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers")
    kl, vq, kl16 = tiny_kl(), tiny_vq(), tiny_kl(16)
    kl.save_pretrained(root / "kl")
    vq.save_pretrained(root / "vq")
    kl16.save_pretrained(root / "kl16")
    return {"kl": (root / "kl", kl), "vq": (root / "vq", vq), "kl16": (root / "kl16", kl16)}


@pytest.mark.parametrize("which", ["kl", "kl16"])
def test_autoencoder_kl_equals_diffusers(folders, which):
    folder, ref = folders[which]
    x = photo_batch(SIZE)
    with torch.no_grad():
        mode = ref.encode(x * 2 - 1).latent_dist.mode()
        images = (ref.decode(mode).sample + 1) / 2
    for tok in (zoo.load(folder), zoo.from_official("diffusers", folder)):
        spec = tok.spec
        assert spec.continuous and spec.code_dim == ref.config.latent_channels and spec.grid == (16, 16)
        latents = tok.encode(x)
        assert isinstance(latents, Latents) and torch.equal(latents.values, mode)
        torch.testing.assert_close(tok.decode(latents, clamp=False), images, atol=1e-6, rtol=0)
        assert latents.bits().tolist() == [16.0 * mode[0].numel()] * 2  # float16 storage
    with pytest.raises(InputError, match="continuous autoencoder: it has no quantizer"):
        tok.quantize(tok.encode_latents(x))
    with pytest.raises(InputError, match="decode takes the zoo.Latents"):
        tok.decode(mode)


def test_vqmodel_equals_diffusers(folders):
    folder, ref = folders["vq"]
    x = photo_batch(SIZE)
    with torch.no_grad():
        h = ref.encode(x * 2 - 1).latents
        _, _, (_, _, want) = ref.quantize(h)
        images = (ref.decode(h).sample + 1) / 2
    tok = zoo.load(folder)
    codes = tok.encode(x)
    assert not tok.spec.continuous and tok.spec.codebook_sizes == (32,)
    assert torch.equal(codes.indices.reshape(-1), want.reshape(-1))
    # diffusers decodes z + (z_q - z).detach() (z_q up to float rounding), we decode the codebook rows themselves
    torch.testing.assert_close(tok.decode(codes, clamp=False), images, atol=1e-5, rtol=0)


def test_continuous_latent_path_has_gradients(folders):
    tok = zoo.load(folders["kl"][0])
    x = photo_batch(SIZE)[:1].requires_grad_(True)
    tok.decode_latents(tok.encode_latents(x)).square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert tok.vae.encoder.conv_in.weight.grad.abs().sum() > 0 and tok.vae.decoder.conv_out.weight.grad.abs().sum() > 0


def test_registered_name_loads_through_the_hub(folders, tmp_path, monkeypatch):
    """A registered diffusers model (config.json + weights in a subfolder, as FLUX.1's vae/) by name, online."""
    from fakehub import FakeHub, Repo
    from huggingface_hub import constants

    from zoo.registry import ModelEntry, register_model

    folder, ref = folders["kl16"]
    files = {f"vae/{p.name}": p.read_bytes() for p in folder.iterdir()}
    with FakeHub(lifetime=120) as hub:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
        hub.repos["test-org/tiny-flux"] = Repo()
        hub.commit("test-org/tiny-flux", "main", files)
        register_model(ModelEntry(name="test-tiny-flux-vae", family="diffusers",
                                  config=dict(class_name="AutoencoderKL", image_size=SIZE),
                                  hub_repo="test-org/tiny-flux", hub_file="vae/diffusion_pytorch_model.safetensors",
                                  extra={"hub_config_file": "vae/config.json"}), overwrite=True)
        tok = zoo.load("test-tiny-flux-vae")
    assert tok.name == "test-tiny-flux-vae" and tok.spec.code_dim == 16
    x = photo_batch(SIZE)
    with torch.no_grad():
        want = ref.encode(x * 2 - 1).latent_dist.mode()
    assert torch.equal(tok.encode(x).values, want)
    # a local copy of the files works too (checkpoint= with the config.json beside it)
    again = zoo.load("test-tiny-flux-vae", checkpoint=folder / "diffusion_pytorch_model.safetensors")
    assert torch.equal(again.encode(x).values, want)


def test_registered_diffusers_models():
    for name, channels in (("sd-vae-ft-ema", None), ("sd-vae-ft-mse", None), ("sdxl-vae", None),
                           ("flux-vae", None), ("movq-kandinsky-2-2", None)):
        entry = zoo.get_entry(name)
        assert entry.family == "diffusers" and entry.hub_repo and entry.extra["hub_config_file"].endswith("config.json")
    assert {m.name: m.value for m in zoo.get_entry("sd-vae-ft-mse").metrics} == {"rFID": 4.70, "PSNR": 24.5,
                                                                                   "SSIM": 0.71}


def test_zoo_eval_one_report_for_a_vae_and_a_discrete_tokenizer(folders, model_dir, tmp_path, capsys):
    from PIL import Image

    from zoo.cli import main

    data = tmp_path / "photos"
    data.mkdir()
    for i, name in enumerate(("astronaut", "coffee", "chelsea")):
        Image.fromarray((photo_batch(64, (name,))[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(
            data / f"{i}.png")
    out = tmp_path / "report"
    rc = main(["eval", "-m", f"{folders['kl'][0]},{model_dir}", "--data", str(data), "--metrics", "psnr,ssim",
               "--batch-size", "2", "-o", str(out), "-q", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    vae_row, vq_row = json.loads((out / "report.json").read_text())["results"]
    assert vae_row["family"] == "diffusers" and vae_row["continuous"] and vae_row["image_size"] == SIZE
    assert vae_row["bits_per_image"] == 16 * 4 * 16 * 16 and "tokens_per_image" not in vae_row
    assert vq_row["family"] == "vqgan" and vq_row["bits_per_image"] == 16 * 6 and not vq_row.get("continuous")
    assert vae_row["images"] == vq_row["images"] == 3 and vae_row["psnr"] > 0 and vq_row["psnr"] > 0
    md = (out / "report.md").read_text()
    assert "16384*" in md and "not comparable with discrete tokens' bits" in md


def test_cli_encode_refuses_a_continuous_model(folders, tmp_path, capsys):
    from PIL import Image

    from zoo.cli import main

    Image.fromarray((photo_batch(SIZE)[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(tmp_path / "a.png")
    assert main(["encode", str(tmp_path / "a.png"), "-m", str(folders["kl"][0]), "-o", str(tmp_path / "c.st"),
                 "-q"]) == 2
    assert "continuous autoencoder: it has latents, not codes" in capsys.readouterr().err
