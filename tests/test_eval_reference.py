"""Every evaluation number against an independent reference, on real photos:

- the input pipeline: files -> `load_images` / the eval reader / the training reader's eval crops equal, bit for bit,
  the official pipelines written here from the official code (torchvision on the PIL image; ADM's
  ``center_crop_arr``), and the fixtures' tensors made by the official repositories; files -> tokens equal the
  official tokens;
- PSNR and SSIM equal scikit-image on JPEG / WebP / blur-degraded photos; LPIPS equals the `lpips` package with
  the same backbone file; rFID equals torch-fidelity and clean-fid (legacy_tensorflow mode) on the same files with
  the same random-weight Inception file;
- rate–distortion helpers against brute-force rate curves.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from safetensors.torch import load_file

import zoo
import zoo.families.vqgan
from conftest import photo
from zoo.eval import EvalConfig, Evaluator
from zoo.eval.data import loader
from zoo.eval.metrics import LPIPS, psnr, ssim
from zoo.eval.testing import write_random_alexnet_features, write_random_inception
from zoo.images import load_images

FIXTURES = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------------------------------------------------------
# The official pipelines, written from the official code (not ours)
# ---------------------------------------------------------------------------------------------------------------
def official_center(path: Path, size: int) -> torch.Tensor:
    """bytedance/1d-tokenizer, One-D-Piece, UniTok, ALIT, MaskGIT fixtures: PIL -> Resize(bicubic) -> CenterCrop."""
    import torchvision.transforms as T

    tf = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC, antialias=True), T.CenterCrop(size),
                    T.ToTensor()])
    return tf(Image.open(path).convert("RGB"))


def center_crop_arr(pil_image: Image.Image, image_size: int) -> np.ndarray:
    """guided-diffusion's (ADM) center_crop_arr, as ImageFolder's dataset/augmentation.py uses it."""
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y: crop_y + image_size, crop_x: crop_x + image_size]


def official_adm(path: Path, size: int) -> torch.Tensor:
    import torchvision.transforms as T

    return T.ToTensor()(center_crop_arr(Image.open(path).convert("RGB"), size))


OFFICIAL = {"center": official_center, "adm": official_adm}
# fixture -> (photos its `images` were made from, the family's official evaluation crop)
FIXTURE_PHOTOS = {
    "titok": (("astronaut", "coffee"), "center"),
    "onedpiece": (("astronaut", "coffee"), "center"),
    "maskgit_vqgan": (("astronaut", "coffee"), "center"),
    "unitok": (("astronaut", "coffee", "chelsea"), "center"),
    "alit": (("astronaut", "coffee", "chelsea"), "center"),
    "imagefolder": (("astronaut", "coffee", "chelsea"), "adm"),
}


def photo_files(folder: Path, names, fmt: str = "png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        p = folder / f"{n}.{fmt}"
        Image.fromarray(photo(n)).save(p, quality=90) if fmt == "jpg" else Image.fromarray(photo(n)).save(p)
        out.append(p)
    return out


@pytest.mark.parametrize("fixture", sorted(FIXTURE_PHOTOS))
def test_files_give_the_fixture_tensor_of_the_official_pipeline_bit_for_bit(fixture, tmp_path):
    names, crop = FIXTURE_PHOTOS[fixture]
    expected = load_file(str(FIXTURES / fixture / "tiny_io.safetensors"))["images"]
    size = expected.shape[-1]
    files = photo_files(tmp_path, names)
    ours = load_images(files, size=size, crop=crop)
    official = torch.stack([OFFICIAL[crop](f, size) for f in files])
    assert torch.equal(official, expected)  # the reference written here is the one the fixtures were made with
    assert torch.equal(ours, expected), (ours - expected).abs().max() * 255


@pytest.mark.parametrize("crop", ["center", "adm"])
def test_every_reader_equals_the_official_pipeline_on_many_shapes(crop, tmp_path):
    """Portrait, landscape, odd sizes, upscaling, JPEG files; load_images, the eval reader and the training
    reader's evaluation crops all give the official tensor (the eval reader its uint8 rounding)."""
    from zoo.train.data import center_crops

    files = photo_files(tmp_path / "png", ("astronaut", "chelsea", "rocket", "coffee"))
    files += photo_files(tmp_path / "jpg", ("immunohistochemistry",), "jpg")
    small = tmp_path / "small.png"
    Image.fromarray(photo("chelsea")).resize((51, 37), Image.BILINEAR).save(small)  # shorter side below size
    odd = tmp_path / "odd.png"
    Image.fromarray(photo("rocket")[:301, :433]).save(odd)
    files += [small, odd]
    for size in (32, 64, 224):
        official = torch.stack([OFFICIAL[crop](f, size) for f in files])
        assert torch.equal(load_images(files, size=size, crop=crop), official), (crop, size)
        batches = list(loader([str(f) for f in files], size, batch_size=3, crop=crop))
        assert torch.equal(torch.cat([b for _, b in batches]), (official * 255).round().to(torch.uint8))
        if crop == "center":
            assert torch.equal(center_crops([str(f) for f in files], size), official)
    # a float tensor of 8-bit values (a decoded image) takes the path of its file
    t = official_center(files[0], 300)
    pil = Image.fromarray((t * 255).round().byte().permute(1, 2, 0).numpy())
    assert torch.equal(load_images(t[None], size=64, crop=crop), load_images([pil], size=64, crop=crop))


def test_files_to_tokens_equal_the_official_tokens(tmp_path):
    """file on disk -> load_images with the family's official crop -> encode == the official tokenizer's codes."""
    titok = zoo.from_official("titok", FIXTURES / "titok" / "tiny_official.safetensors",
                              next((FIXTURES / "titok").glob("tiny_config.*")), heads=4)
    io_t = load_file(str(FIXTURES / "titok" / "tiny_io.safetensors"))
    assert titok.spec.eval_crop == "center"
    files = photo_files(tmp_path / "t", ("astronaut", "coffee"))
    codes = titok.encode(load_images(files, size=64, crop=titok.spec.eval_crop))
    assert torch.equal(codes.indices[..., 0], io_t["indices"].reshape(2, -1).long())

    folder = zoo.from_official("imagefolder", FIXTURES / "imagefolder" / "tiny_official.safetensors",
                               FIXTURES / "imagefolder" / "tiny_config.yaml", encoder_heads=4, decoder_heads=2)
    io_f = load_file(str(FIXTURES / "imagefolder" / "tiny_io.safetensors"))
    assert folder.spec.eval_crop == "adm"
    files = photo_files(tmp_path / "f", ("astronaut", "coffee", "chelsea"))
    codes = folder.encode(load_images(files, size=64, crop=folder.spec.eval_crop))
    for g in range(2):
        assert torch.equal(codes.indices[..., g], io_f[f"indices_branch{g}"])


# ---------------------------------------------------------------------------------------------------------------
# PSNR, SSIM, LPIPS on real photos and realistic degradations
# ---------------------------------------------------------------------------------------------------------------
def _codec(arr: np.ndarray, fmt: str, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        return np.asarray(img.convert("RGB")).copy()


@pytest.fixture(scope="module")
def degraded() -> tuple[torch.Tensor, torch.Tensor]:
    """Six photos (64x64 evaluation crops, uint8) and realistic reconstructions: JPEG q 8 / 30 / 75, WebP q 10,
    Gaussian blur 1.0 and an 8-level posterisation -> (originals, reconstructions), uint8 ``[6, 3, 64, 64]``."""
    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")
    orig = (load_images([photo(n) for n in names], size=64) * 255).round().to(torch.uint8)
    arrs = [x.permute(1, 2, 0).numpy().copy() for x in orig]
    recs = [_codec(arrs[0], "JPEG", 8), _codec(arrs[1], "JPEG", 30), _codec(arrs[2], "JPEG", 75),
            _codec(arrs[3], "WEBP", 10),
            np.array(Image.fromarray(arrs[4]).filter(ImageFilter.GaussianBlur(1.0))),
            (arrs[5] // 32 * 32 + 16).astype(np.uint8)]
    rec = torch.stack([torch.from_numpy(np.ascontiguousarray(r)).permute(2, 0, 1) for r in recs])
    return orig, rec


def test_psnr_and_ssim_equal_scikit_image(degraded):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    orig, rec = degraded
    ours_p, ours_s = psnr(orig, rec), ssim(orig, rec)
    for i in range(orig.shape[0]):
        a, b = orig[i].permute(1, 2, 0).numpy(), rec[i].permute(1, 2, 0).numpy()
        p = peak_signal_noise_ratio(a, b, data_range=255)
        s = structural_similarity(a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
        assert abs(float(ours_p[i]) - p) < 1e-6, (i, float(ours_p[i]), p)
        assert abs(float(ours_s[i]) - s) < 1e-6, (i, float(ours_s[i]), s)
    assert 0.3 < float(ours_s.min()) and float(ours_s.max()) < 0.99  # a real spread of qualities
    assert float(psnr(orig, orig)[0]) == 100.0


def test_lpips_equals_the_lpips_package_with_the_same_backbone_file(degraded, tmp_path):
    lpips = pytest.importorskip("lpips")
    import torchmetrics

    orig, rec = degraded
    weights = write_random_alexnet_features(tmp_path / "alexnet-random.pth", seed=3)  # torchvision layout
    ours = LPIPS("alex", weights)(orig, rec)
    ref_net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)  # heads from its wheel
    sd = torch.load(weights, weights_only=True)
    ref_net.net.load_state_dict({k: sd["features.{}.{}".format(*k.split(".")[1:])]
                                 for k in ref_net.net.state_dict()})
    # the linear heads torchmetrics ships are the lpips package's v0.1 heads
    tm_heads = torch.load(Path(torchmetrics.__file__).parent / "functional/image/lpips_models/alex.pth",
                          map_location="cpu", weights_only=True)
    lp_heads = torch.load(Path(lpips.__file__).parent / "weights/v0.1/alex.pth", map_location="cpu",
                          weights_only=True)
    assert tm_heads.keys() == lp_heads.keys() and all(torch.equal(tm_heads[k], lp_heads[k]) for k in tm_heads)
    with torch.no_grad():
        ref = ref_net(orig.float() / 127.5 - 1, rec.float() / 127.5 - 1).flatten().double()
    assert float(ref.min()) > 0
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------------------------------
# rFID against torch-fidelity and clean-fid on the same files
# ---------------------------------------------------------------------------------------------------------------
def test_rfid_equals_torch_fidelity_and_clean_fid_on_the_same_files(tmp_path):
    """The Evaluator's rFID of a tiny VQGAN on 5 photos (64x64) against torch-fidelity and clean-fid's
    legacy_tensorflow mode on the PNGs of the same crops and reconstructions, same random Inception file.

    clean-fid's own legacy_tensorflow network is a TorchScript file (nvlabs' inception-2015-12-05.pt) that it
    downloads and that cannot be rebuilt with other weights offline, so its pipeline (file reading, no resize
    outside the network, statistics, FID) runs here with torch-fidelity's network on our weights file, which
    resizes inside the network as legacy_tensorflow does.
    """
    import torch_fidelity

    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
    data = tmp_path / "data"
    data.mkdir()
    for i, n in enumerate(names):
        Image.fromarray(photo(n)).save(data / f"{i}.png")
    weights = write_random_inception(tmp_path / "inception-random.pth", seed=1)
    torch.manual_seed(0)
    model = zoo.build("vqgan", zoo.families.vqgan.TINY_CONFIG)
    cfg = EvalConfig(metrics=("rfid",), batch_size=5, inception_weights=weights, samples=5)
    res = Evaluator(str(data), cfg).run(model)
    real_dir, fake_dir = tmp_path / "real", tmp_path / "fake"
    real_dir.mkdir(), fake_dir.mkdir()
    for i, (o, r) in enumerate(zip(*res["_samples"])):
        Image.fromarray(o.permute(1, 2, 0).numpy()).save(real_dir / f"{i}.png")
        Image.fromarray(r.permute(1, 2, 0).numpy()).save(fake_dir / f"{i}.png")
    tf = torch_fidelity.calculate_metrics(input1=str(real_dir), input2=str(fake_dir), fid=True, cuda=False,
                                          verbose=False, cache=False, save_cpu_ram=True,
                                          feature_extractor_weights_path=str(weights))["frechet_inception_distance"]
    assert res["rfid"] > 1
    assert abs(res["rfid"] - tf) / tf < 1e-4, (res["rfid"], tf)

    cleanfid = pytest.importorskip("cleanfid.fid")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    net.eval()

    def features(x: torch.Tensor) -> torch.Tensor:  # clean-fid hands float [0, 255] batches
        with torch.no_grad():
            return net(x.round().to(torch.uint8))[0]

    cf = cleanfid.compute_fid(str(real_dir), str(fake_dir), mode="legacy_tensorflow", custom_feat_extractor=features,
                              device=torch.device("cpu"), num_workers=0, verbose=False, use_dataparallel=False)
    assert abs(res["rfid"] - cf) / cf < 1e-4, (res["rfid"], cf)


# ---------------------------------------------------------------------------------------------------------------
# Rate–distortion helpers
# ---------------------------------------------------------------------------------------------------------------
def test_rate_curve_interpolation_and_matched_bytes_against_brute_force():
    from zoo.eval.rd import bytes_for_psnr, decode, encode, match_bytes, psnr_at_bytes, rate_curve

    img = (load_images([photo("chelsea")], size=64)[0] * 255).round().to(torch.uint8)
    for codec in ("jpeg", "webp"):
        curve = rate_curve(img, codec)  # every quality 1..100, real file bytes, PSNR of the decoded file
        xs, ys = curve.frontier()
        assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
        # exactly on a frontier point, and half-way in log bytes between two
        assert psnr_at_bytes(curve, xs[3]) == pytest.approx(ys[3], abs=1e-12)
        mid = math.sqrt(xs[3] * xs[4])
        assert psnr_at_bytes(curve, mid) == pytest.approx((ys[3] + ys[4]) / 2, abs=1e-9)
        assert bytes_for_psnr(curve, (ys[3] + ys[4]) / 2) == pytest.approx(mid, rel=1e-9)
        assert psnr_at_bytes(curve, xs[0] - 1) is None and bytes_for_psnr(curve, ys[-1] + 0.01) is None
        for target in (xs[0] - 1, xs[0] + 3, 1.2 * xs[0] + 50, xs[-1] + 10):
            m = match_bytes(img, codec, target)
            fits = [(q, b) for q, b in zip(curve.qualities, curve.nbytes) if b <= target]
            if not fits:  # unreachable: flagged, quality 1 with its real (larger) bytes
                assert not m.reachable and m.quality == 1 and m.nbytes == curve.nbytes[0] > target
                assert m.psnr_at_target is None
                continue
            assert m.reachable and m.nbytes <= target and m.nbytes == curve.nbytes[m.quality - 1]
            assert m.quality == 100 or curve.nbytes[m.quality] > target  # the next quality does not fit
            if m.quality < 100:
                lo, hi = curve.psnr[m.quality - 1], curve.psnr[m.quality]
                t = (math.log(target) - math.log(m.nbytes)) / (math.log(curve.nbytes[m.quality]) - math.log(m.nbytes))
                expected = lo + t * (hi - lo) if hi > lo else lo  # a larger file that is worse is not on the curve
                assert m.psnr_at_target == pytest.approx(expected, abs=1e-9)
            assert torch.equal(m.decoded, decode(encode(Image.fromarray(img.permute(1, 2, 0).numpy()), codec, m.quality)))
