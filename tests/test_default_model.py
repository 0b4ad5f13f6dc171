"""The embedded `default` tokenizer: it loads offline from the package, and it is worth running.

The first default (a 2.4M-parameter f8 VQGAN, 1024 codes, 1280 bytes/image) reached 15.63 dB PSNR on the held-out
astronaut with its mean colour 14.73/255 off, and turned the greyscale camera photo lavender (mean colour 23.92/255
off, channels 13.23/255 apart per pixel). The second (conv-FSQ without a colour map, 1024 bytes, shipped until
2026-12-01) reached 26.80 dB on the held-out rocket with its mean colour 3.78/255 off (8.52/255 at worst, Blinds).
The current one: astronaut 21.06 dB, 0.14/255; camera 24.21 dB, 0.01/255; rocket 27.72 dB, 0.06/255. Figures of
the current one come from `python -m zoo.train.default_model report`.
"""
from pathlib import Path

import pytest
import torch

import zoo
from zoo.train.default_model import (bytes_at_psnr, codec_curve, colour_shift, compare_with_codecs, psnr_at,
                                     psnr_ssim)
from zoo.train.data import center_crops

PREVIOUS = {"astronaut": {"psnr": 15.63, "colour_shift": 14.73}, "camera": {"psnr": 18.64, "colour_shift": 23.92}}
PREVIOUS_FSQ = {"rocket": {"psnr": 26.80, "colour_shift": 3.78}}  # the default without a colour map


@pytest.fixture(scope="module")
def default():
    return zoo.load("default")


def test_default_loads_offline_from_the_package(default, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = zoo.get_entry("default")
    assert entry.checkpoint_format == "zoo" and entry.family == "convfsq"
    assert Path(entry.extra["package_dir"]) == Path(zoo.__file__).parent / "weights" / "default"
    spec = default.spec  # 48 colour tokens (4x4 squares x RGB) + 32x32 grid tokens, 8 bits each: 1072 bytes per image
    assert spec.scales == (48, 1024) and spec.max_tokens == 1072 and spec.bits_per_token == 8
    size = (Path(entry.extra["package_dir"]) / "model.safetensors").stat().st_size
    assert size < 20e6


def test_zoo_reconstruct_photo_without_a_model_uses_the_default_offline(default, tmp_path, monkeypatch, capsys):
    """The mission's first command, as written: `zoo reconstruct photo.png` (no -m) on a machine with no network."""
    from PIL import Image

    from zoo.cli import main
    from zoo.images import load_images, skimage_photo, to_tensor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    Image.fromarray(skimage_photo("astronaut")).save("photo.png")
    assert main(["reconstruct", "photo.png", "-q", "--device", "cpu"]) == 0
    assert "PSNR" in capsys.readouterr().out
    written = to_tensor(tmp_path / "reconstructions" / "photo.png")
    expected = default.reconstruct(load_images([tmp_path / "photo.png"], size=256))[0]
    assert torch.allclose(written, expected.clamp(0, 1), atol=0.5 / 255 + 1e-6)
    assert main(["encode", "photo.png", "-q", "--device", "cpu"]) == 0
    assert zoo.Codes.load(tmp_path / "codes.safetensors").model == "default"
    # an official checkpoint belongs to a named model: without -m it is refused, not tried on the default
    assert main(["reconstruct", "photo.png", "--checkpoint", "photo.png", "-q", "--device", "cpu"]) == 2
    assert "--checkpoint needs -m NAME" in capsys.readouterr().err


def test_the_package_entry_is_data_and_a_users_default_registered_first_is_kept(monkeypatch):
    """zoo.weights builds the entry without touching the registry; the registry adds it on first use, unless the
    user registered a model named `default` before that."""
    import zoo.registry as registry
    from zoo.weights import default_entry

    others = {k: v for k, v in registry._MODELS.items() if k != "default"} if zoo.list_models() else {}
    monkeypatch.setattr(registry, "_MODELS", others)
    monkeypatch.setattr(registry, "_BUILTINS_LOADED", False)  # families stay imported (they registered above)
    entry = default_entry()
    assert entry.name == "default" and entry.family == "convfsq" and "default" not in registry._MODELS
    mine = zoo.ModelEntry(name="default", family="vqgan", config={})
    registry.register_model(mine)
    assert zoo.get_entry("default") is mine and "onedpiece-l-256" in zoo.list_models()


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_default_beats_the_previous_default_on_held_out_photos(default, name):
    """Held out: scikit-image's photos are in no training recipe of the default (recipes/convfsq/default.yaml)."""
    images = center_crops([f"skimage:{name}"], 256)
    recon = default.reconstruct(images)
    psnr = psnr_ssim(recon, images)[0][0]
    shift = colour_shift(recon, images)[0]
    assert psnr > PREVIOUS[name]["psnr"] + 3, psnr
    assert shift < 3.0 < PREVIOUS[name]["colour_shift"], shift
    if name == "camera":  # a greyscale photo stays greyer: mean channel spread per pixel 8.17/255 (previous: 13.23)
        spread = (recon.amax(1) - recon.amin(1)).mul(255).mean()
        assert spread < 10.0, float(spread)


def test_default_beats_the_default_without_a_colour_map_on_a_held_out_photo(default):
    """The colour map (48 bytes) and the stage trained with it: on the held-out rocket 27.72 dB and 0.06/255 where
    the previous default reached 26.80 dB and 3.78/255."""
    images = center_crops(["skimage:rocket"], 256)
    recon = default.reconstruct(images)
    psnr = psnr_ssim(recon, images)[0][0]
    shift = colour_shift(recon, images)[0]
    assert psnr > PREVIOUS_FSQ["rocket"]["psnr"] + 0.5, psnr
    assert shift < 1.0 < 3.0 < PREVIOUS_FSQ["rocket"]["colour_shift"], shift


def test_default_report_states_what_it_really_does(default):
    """The shipped report (README and `zoo info default` are made from it) equals a fresh measurement."""
    report = zoo.get_entry("default").extra["report"]["heldout"]
    names = ["skimage:astronaut", "skimage:camera"]
    got = compare_with_codecs(default, names, codecs=("jpeg",))
    for row in got["rows"]:
        shipped = next(r for r in report["rows"] if r["image"] == row["image"])
        assert row["psnr"] == pytest.approx(shipped["psnr"], abs=1e-3)
        assert row["colour_shift"] == pytest.approx(shipped["colour_shift"], abs=1e-2)
        assert row["jpeg"]["bytes_at_psnr"] == pytest.approx(shipped["jpeg"]["bytes_at_psnr"], rel=1e-3)
    s = report["summary"]
    assert s["jpeg"]["bytes_ratio"] >= 1.5  # JPEG needs 1.61x the default's bytes to reach its PSNR (the aim: 1.5x)
    assert s["colour_shift_max"] < 3.0  # every photo's mean colour within 3/255 (0.93/255 at most, YellowFlower)
    assert s["codes_used_fraction"] >= 0.9


def test_codec_bytes_and_psnr_are_read_off_the_codec_s_own_curve():
    """Bytes for a PSNR lie between two real files of the curve; the flags say when the codec cannot get there."""
    image = center_crops(["skimage:coffee"], 256)[0]
    curve = codec_curve(image, "jpeg")
    assert curve.qualities[0] == 1 and curve.qualities[-1] == 95
    xs = sorted(curve.nbytes)
    target = (curve.psnr[20] + curve.psnr[21]) / 2  # between quality 21 and 22
    needed, flag = bytes_at_psnr(curve, target)
    assert flag == "" and curve.nbytes[20] < needed < curve.nbytes[21]
    assert bytes_at_psnr(curve, min(curve.psnr) - 1) == (xs[0], "floor")
    assert bytes_at_psnr(curve, 99.0) == (None, "ceiling")
    assert psnr_at(curve, xs[0] - 1) == (None, "floor")
    got, flag = psnr_at(curve, needed)  # the inverse, on the same curve
    assert flag == "" and got == pytest.approx(target, abs=1e-6)


def test_readme_table_is_the_shipped_report():
    """README.md's figures for the default are generated from its report.json (`report --markdown`)."""
    from zoo.train.default_model import markdown_summary

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    report = zoo.get_entry("default").extra["report"]["heldout"]
    assert markdown_summary(report) in readme
