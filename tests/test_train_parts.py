"""Training parts: losses, discriminators, perceptual losses from weight files, data sources, family hooks."""
import io
import tarfile

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import ConfigError, OfflineError
from zoo.train import train
from zoo.train.data import CropDataset, build_stream, expand_braces, image_source, scale_saturation
from zoo.train.discriminators import DinoDiscriminator, DinoViTS16, MaskBitDiscriminator, PatchGAN
from zoo.train.losses import LeCam, PixelLoss, adaptive_gan_weight, entropy_loss, hinge_d_loss, hinge_g_loss
from zoo.train.perceptual import LPIPS, VGG16Features
from zoo.train.recipe import DataConfig

from conftest import photo, photo_batch


# ---------------------------------------------------------------------------------------------------------------
# Losses and discriminators
# ---------------------------------------------------------------------------------------------------------------
def test_hinge_lecam_and_adaptive_weight():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.5 * (0.25 + 0.75))
    assert float(hinge_g_loss(fake)) == pytest.approx(0.75)
    lecam = LeCam(decay=0.5)
    lecam.update(real, fake)  # first update initialises the EMAs
    assert float(lecam.ema_real) == pytest.approx(1.25) and float(lecam.ema_fake) == pytest.approx(-0.75)
    assert float(lecam(real, fake)) == pytest.approx(((2.75 ** 2 + 1.25 ** 2) / 2) + ((3.25 ** 2 + 0.75 ** 2) / 2))
    w = torch.nn.Parameter(torch.ones(3))
    nll, g = (w * 2).sum(), (w * 0.5).sum()
    assert float(adaptive_gan_weight(nll, g, w)) == pytest.approx(4.0, rel=1e-3)
    assert float(adaptive_gan_weight(nll, g, w, hi=2.0)) == 2.0


def test_colour_term_is_the_error_of_block_means(photos64):
    x = photos64
    shifted = x + torch.tensor([3 / 255, -2 / 255, 0.0]).view(1, 3, 1, 1)
    noisy = x + 0.2 * torch.randn_like(x)  # zero-mean noise: large l2, small block-mean error
    loss = PixelLoss(l1=1.0, l2=1.0, colour=1.0, colour_pool=16)
    assert set(loss(x, x)) == {"l1", "l2", "colour"} and float(loss(x, x)["colour"]) == 0.0
    cast = loss(shifted, x)
    assert float(cast["colour"]) == pytest.approx(float(cast["l2"]), rel=1e-4)  # a cast is all low frequency
    assert float(cast["colour"]) == pytest.approx((9 + 4) / 3 / 255 ** 2, rel=1e-4)
    noise = loss(noisy, x)
    assert float(noise["colour"]) < 0.01 * float(noise["l2"])
    assert set(PixelLoss(l1=0.0, l2=1.0)(x, x)) == {"l2"}  # colour off by default


def test_saturation_augmentation_matches_pil():
    from PIL import Image, ImageEnhance

    img = photo("coffee")[:96, :96]
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    for factor in (0.0, 1.0, 1.6):
        ref = np.asarray(ImageEnhance.Color(Image.fromarray(img)).enhance(factor)).astype(np.float32) / 255
        out = scale_saturation(x.clone(), factor).permute(1, 2, 0).numpy()
        assert np.abs(out - ref).max() <= 1.5 / 255  # PIL rounds its grey and its output to uint8
    more = scale_saturation(x.clone(), 1.6)
    assert float((more - more.mean(0)).abs().mean()) > 1.3 * float((x - x.mean(0)).abs().mean())
    crops = CropDataset(image_source(DataConfig(paths=["skimage:coffee"])),
                        DataConfig(paths=["skimage:coffee"], crop_size=64, saturation=[1.5, 1.5], flip=False), 0)
    plain = CropDataset(image_source(DataConfig(paths=["skimage:coffee"])),
                        DataConfig(paths=["skimage:coffee"], crop_size=64, flip=False), 0)
    assert torch.allclose(crops[3], scale_saturation(plain[3], 1.5))  # the same crop, saturated


def test_ema_warms_up_like_diffusers_and_can_be_constant():
    """With warm-up the average forgets the initial weights within steps (diffusers' EMAModel decay schedule);
    without it, 0.999 still holds (0.999 ** 100 =) 90% of them after 100 updates."""
    from zoo.train.ema import EMA

    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
    warm, flat = EMA(model, 0.999), EMA(model, 0.999, warmup=False)
    assert warm.current_decay() == pytest.approx(0.1) and flat.current_decay() == 0.999
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(100):
        warm.update(model)
        flat.update(model)
    assert warm.current_decay() == pytest.approx(101 / 110)
    assert float(warm.shadow["weight"][0, 0]) > 0.99  # prod of d_n over n < 100 is tiny
    assert float(flat.shadow["weight"][0, 0]) == pytest.approx(1 - 0.999 ** 100, rel=1e-4)
    state = warm.state_dict()
    again = EMA(model, 0.999)
    again.load_state_dict(state)
    assert again.current_decay() == warm.current_decay()  # resumes on the same schedule


def test_entropy_loss_prefers_confident_and_spread_codes():
    codebook = torch.eye(4)
    spread = codebook.repeat(4, 1)  # every code used, each vector exactly on one
    collapsed = codebook[:1].repeat(16, 1)  # one code for everything
    assert entropy_loss(spread, codebook) < entropy_loss(collapsed, codebook)


def test_discriminator_shapes_and_gradients(photos64):
    x = photos64.clone().requires_grad_(True)
    assert PatchGAN(16, 3)(x).shape == (2, 1, 6, 6)
    out = MaskBitDiscriminator(32)(x)
    assert out.shape == (2, 1, 16, 16)
    out.mean().backward()
    assert x.grad.abs().sum() > 0


def _dino_file(path):
    torch.manual_seed(0)
    sd = DinoViTS16().state_dict()
    torch.save({k: v.clone() for k, v in sd.items()}, path)  # the official file is a flat backbone state dict
    return sd


def test_dino_discriminator_loads_the_official_layout_and_stays_frozen(tmp_path, photos64, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(OfflineError, match="dino_deitsmall16_pretrain.pth"):
        DinoDiscriminator()
    sd = _dino_file(tmp_path / "dino_deitsmall16_pretrain.pth")
    d = DinoDiscriminator(tmp_path / "dino_deitsmall16_pretrain.pth").train()
    assert torch.equal(d.backbone.blocks[3].attn.qkv.weight, sd["blocks.3.attn.qkv.weight"])
    assert not d.backbone.training and not any(p.requires_grad for p in d.backbone.parameters())
    assert float(d.backbone.blocks[0].attn.qkv.bias[384:768].abs().sum()) == 0  # key bias zeroed
    x = photos64.clone().requires_grad_(True)
    logits = d(x)
    assert logits.shape == (2, 5 * 197)
    logits.mean().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in d.heads.parameters())


def test_lpips_from_weight_files_and_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(OfflineError, match="vgg16-397923af.pth"):
        LPIPS()
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(VGG16Features().state_dict(), hub / "vgg16-397923af.pth")  # torchvision's key layout
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(lin, tmp_path / "vgg.pth")
    lp = LPIPS(lin=tmp_path / "vgg.pth")
    a = photo_batch(32)
    b = photo_batch(32, names=("chelsea", "rocket"))
    same, diff = lp(a, a), lp(a, b)
    assert same.shape == (2,) and float(same.abs().max()) < 1e-6 and float(diff.min()) > 0
    assert not any(p.requires_grad for p in lp.parameters())


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------
def test_brace_expansion():
    assert expand_braces("s/{000..002}.tar") == ["s/000.tar", "s/001.tar", "s/002.tar"]
    assert expand_braces("{a,b}/x-{1..2}") == ["a/x-1", "a/x-2", "b/x-1", "b/x-2"]


def test_webdataset_shards_and_deterministic_crops(tmp_path):
    from PIL import Image

    with tarfile.open(tmp_path / "shard-0.tar", "w") as tar:
        for key, name in (("000", "astronaut"), ("001", "coffee")):
            buf = io.BytesIO()
            Image.fromarray(photo(name)).save(buf, format="PNG")
            info = tarfile.TarInfo(f"{key}.png")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
            meta = tarfile.TarInfo(f"{key}.json")
            meta.size = 2
            tar.addfile(meta, io.BytesIO(b"{}"))
    cfg = DataConfig(source="webdataset", paths=[str(tmp_path / "shard-{0..0}.tar")], crop_size=32, batch_size=2,
                     resize_range=[64, 256])
    src = image_source(cfg)
    assert len(src) == 2 and src.read(0).size == (512, 512)
    ds = CropDataset(src, cfg, seed=3)
    assert torch.equal(ds[5], CropDataset(src, cfg, seed=3)[5])  # a pure function of (seed, sample number)
    assert not torch.equal(ds[5], CropDataset(src, cfg, seed=4)[5])
    # two processes take disjoint halves of each global batch; together they see what one process sees
    one = build_stream(cfg, seed=3)
    r0, r1 = (build_stream(DataConfig(**{**cfg.__dict__, "batch_size": 1}), 3, rank, 2) for rank in (0, 1))
    assert torch.equal(one.next(), torch.cat([r0.next(), r1.next()]))


def test_excluded_photos_are_held_out():
    cfg = DataConfig(paths=["skimage:astronaut", "skimage:coffee"], exclude=["skimage:coffee"], crop_size=32)
    assert image_source(cfg).names == ["skimage:astronaut"]
    with pytest.raises(ConfigError, match="no training images left"):
        image_source(DataConfig(paths=["skimage:coffee"], exclude=["skimage:*"]))


# ---------------------------------------------------------------------------------------------------------------
# Family hooks: TiTok two-stage (proxy codes, then decoder fine-tuning); One-D-Piece Tail Token Drop
# ---------------------------------------------------------------------------------------------------------------
TEACHER = dict(image_size=32, hidden_channels=32, channel_mult=(1, 1, 1, 1), num_res_blocks=1, z_channels=16,
               codebook_size=64)
TITOK = dict(image_size=32, patch_size=8, num_latent_tokens=8, encoder_width=32, encoder_depth=1, encoder_heads=2,
             decoder_width=32, decoder_depth=1, decoder_heads=2, codebook_size=32, token_size=4, legacy_reshape=False,
             two_stage=True, pixel_codebook_size=64, pixel_hidden_channels=32, pixel_channel_mult=[1, 1, 1, 1],
             pixel_num_res_blocks=1, pixel_z_channels=16)


def _recipe(family, model, **sections):
    rec = {"family": family, "model": model, "seed": 0,
           "data": {"paths": ["skimage:astronaut", "skimage:coffee", "skimage:chelsea"], "crop_size": 32,
                    "resize_range": [32, 96], "batch_size": 4, "cache_shorter": 128},
           "loss": {"l2": 1.0}, "optim": {"lr": 1e-3},
           "train": {"max_steps": 6, "log_every": 2, "save_every": 6, "threads": 1}}
    for key, value in sections.items():
        rec[key] = {**rec.get(key, {}), **value}
    return rec


def test_titok_two_stage_hooks(tmp_path):
    torch.manual_seed(1)
    teacher = zoo.build("vqgan", TEACHER)
    teacher.save_pretrained(tmp_path / "teacher")
    with pytest.raises(ConfigError, match="train.stage"):
        train(_recipe("titok", TITOK), output=tmp_path / "x", quiet=True)
    with pytest.raises(ConfigError, match="loss.teacher"):
        train(_recipe("titok", TITOK, train={"stage": 1}, loss={"proxy_ce": 1.0}), output=tmp_path / "x", quiet=True)
    # stage 1: proxy-code cross-entropy; the pixel decoder is the teacher's, and stays frozen
    s1 = train(_recipe("titok", TITOK, train={"stage": 1, "max_steps": 10},
                       loss={"proxy_ce": 1.0, "l2": 0.0, "teacher": str(tmp_path / "teacher")}),
               output=tmp_path / "s1", quiet=True)
    log = [__import__("json").loads(x) for x in (tmp_path / "s1" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["loss/proxy_ce"] < log[0]["loss/proxy_ce"] and "loss/l2" not in log[-1]
    w1 = load_file(str(s1.model_dir / "model.safetensors"))
    tw = teacher.state_dict()
    assert torch.equal(w1["pixel_quantize.weight"], tw["quantizer.embedding.weight"])
    assert torch.equal(w1["pixel_decoder.conv_out.weight"], tw["decoder.conv_out.weight"])
    # stage 2 from stage 1: encoder and quantizer frozen, decoders trained on pixels with a GAN
    s2 = train(_recipe("titok", {"two_stage": True}, train={"stage": 2, "init": str(s1.model_dir)},
                       loss={"quantizer": 0.0, "gan": {"weight": 0.1, "discriminator": "maskbit", "channels": 32,
                                                       "lecam": 0.001}}),
               output=tmp_path / "s2", quiet=True)
    w2 = load_file(str(s2.model_dir / "model.safetensors"))
    assert all(torch.equal(w1[k], w2[k]) for k in w1 if k.startswith(("encoder.", "quantizer.", "latent_tokens")))
    assert not torch.equal(w1["pixel_decoder.conv_out.weight"], w2["pixel_decoder.conv_out.weight"])
    assert zoo.load(s2.model_dir).reconstruct(photo_batch(32)).shape == (2, 3, 32, 32)


def test_onedpiece_tail_token_drop_trains_on_prefixes(tmp_path):
    model = {**TITOK, "two_stage": False, "variable_length": True, "tail_token_drop": True}
    result = train(_recipe("onedpiece", model, train={"max_steps": 8, "log_every": 1}), output=tmp_path / "r",
                   quiet=True)
    kept = [__import__("json").loads(x)["num_tokens"] for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert all(1 <= k <= 8 for k in kept) and len(set(kept)) > 1  # one length per step, drawn from U{1..8}
    tok = zoo.load(result.model_dir)
    assert tok.reconstruct(photo_batch(32), num_tokens=2).shape == (2, 3, 32, 32)


def test_families_without_training_hooks_say_so():
    from zoo.train.adapters import get_adapter

    with pytest.raises(NotImplementedError, match="my-family.*training adapter.*tokenflow"):
        get_adapter("my-family")


def test_imagefolder_semantic_hook(tmp_path):
    """The release's semantic distillation (frozen DINOv2 of an official file) plugged in by family name."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "imagefolder"
    if "imagefolder" not in zoo.list_families() or not (fixtures / "tiny_official.safetensors").is_file():
        pytest.skip("the imagefolder family is not in this build")
    tiny = zoo.from_official("imagefolder", fixtures / "tiny_official.safetensors", fixtures / "tiny_config.yaml",
                             encoder_heads=4, decoder_heads=2)
    tiny.save_pretrained(tmp_path / "init")
    with pytest.raises(ConfigError, match="loss.teacher"):
        train(_recipe("imagefolder", {}, train={"init": str(tmp_path / "init")}, data={"crop_size": 64},
                      loss={"semantic": 0.1}), output=tmp_path / "x", quiet=True)
    result = train(_recipe("imagefolder", {}, train={"init": str(tmp_path / "init"), "max_steps": 2},
                           data={"crop_size": 64, "resize_range": [64, 128]},
                           loss={"semantic": 0.1, "teacher": str(fixtures / "tiny_official.safetensors")}),
                   output=tmp_path / "r", quiet=True)
    last = __import__("json").loads((tmp_path / "r" / "log.jsonl").read_text().splitlines()[-1])
    assert last["loss/semantic"] > 0 and 0 < last["codebook/used_fraction"] <= 1
    assert zoo.load(result.model_dir).family == "imagefolder"


def test_hugging_face_dataset_source(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    ds = datasets.Dataset.from_dict({"img": [Image.fromarray(photo(n)) for n in ("astronaut", "coffee")],
                                     "label": [0, 1]}, features=datasets.Features(
        {"img": datasets.Image(), "label": datasets.Value("int64")}))
    ds.save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(ConfigError, match="hf_image_key: 'image' is not a column"):
        image_source(DataConfig(source="hf", paths=[str(tmp_path / "ds")]))
    cfg = DataConfig(source="hf", paths=[str(tmp_path / "ds")], hf_image_key="img", crop_size=32, batch_size=2)
    assert build_stream(cfg, seed=0).next().shape == (2, 3, 32, 32)
