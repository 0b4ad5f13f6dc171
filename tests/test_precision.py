"""Reduced precision (`Tokenizer.set_precision`, `--precision`): decoding under autocast keeps every family's codes
bit for bit and moves its images a little; encoding under it is opt-in; fp16 overflow is refused, not returned;
the CLI, `zoo eval`'s report and benchmarks/precision.py say which precision ran. Tiny model of every family on
real photos (CPU autocast: the same dtype rules as on a GPU, with oneDNN's CPU kernels)."""
from __future__ import annotations

import json
import warnings
from typing import Iterator

import pytest
import torch
from PIL import Image

import zoo
from conftest import benchmark_script, photo_batch
from test_speed import FAMILIES, tiny
from zoo.errors import InputError, PrecisionError


@pytest.fixture(autouse=True)
def _no_slow_cpu_warning(monkeypatch):
    """This CPU emulates bf16 (the warning is tested on its own below)."""
    monkeypatch.setattr(zoo.api, "cpu_has_native", lambda precision: True)


@pytest.mark.parametrize("family", FAMILIES)
def test_decoding_in_bf16_keeps_the_codes_and_moves_the_images_a_little(family):
    tok = tiny(family)
    images = photo_batch(tok.spec.image_size)
    codes = tok.encode(images)
    fp32 = tok.decode(codes, clamp=False)
    assert tok.set_precision("bf16") is tok and tok.precision == "bf16 decode"
    codes2 = tok.encode(images)  # the encoder still runs in fp32
    if isinstance(codes, zoo.Latents):
        assert torch.equal(codes2.values, codes.values) and codes2.values.dtype == torch.float32
    else:
        assert torch.equal(codes2.indices, codes.indices)
    bf16 = tok.decode(codes2, clamp=False)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    diff = (bf16 - fp32).abs()
    assert 0 < float(diff.mean()) < 0.03  # autocast ran (the images moved), by bf16's 8 bits of mantissa at most
    tok.set_precision("fp32")
    assert tok.precision == "fp32" and torch.equal(tok.decode(codes, clamp=False), fp32)


@pytest.mark.parametrize("family", ("titok", "imagefolder", "var-vqvae", "diffusers_vae"))
def test_encoding_in_bf16_is_opt_in_and_its_codes_decode(family):
    tok = tiny(family)
    images = photo_batch(tok.spec.image_size)
    codes = tok.encode(images)
    tok.set_precision("bf16", encode=True)
    assert tok.precision == "bf16 encode+decode"
    codes2 = tok.encode(images)
    if isinstance(codes, zoo.Latents):  # latents come back in the model's dtype, near fp32's
        assert codes2.values.dtype == torch.float32
        assert 0 < float((codes2.values - codes.values).abs().max()) < 0.1
    else:  # most indices agree; the quantizer's distances are fp32, features near a tie can flip
        assert codes2.indices.dtype == torch.int64 and codes2.fingerprint == codes.fingerprint
        assert float((codes2.indices == codes.indices).double().mean()) > 0.6
    assert torch.isfinite(tok.decode(codes2)).all()


def test_fp16_overflow_is_an_error_that_says_to_use_bf16():
    tok = tiny("convfsq")
    last = [m for m in tok.decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.mul_(1e6)  # outputs beyond fp16's 65504
    codes = tok.encode(photo_batch(64))
    assert torch.isfinite(tok.decode(codes, clamp=False)).all()  # fp32 holds them
    tok.set_precision("fp16")
    with pytest.raises(PrecisionError, match=r"fp16 decode gave non-finite values.*set_precision\('bf16'\)"):
        tok.decode(codes, clamp=False)
    tok.set_precision("bf16")  # fp32's exponent range: finite
    assert torch.isfinite(tok.decode(codes, clamp=False)).all()


def test_bad_precision_settings_are_refused(monkeypatch):
    tok = tiny("convfsq")
    with pytest.raises(InputError, match="precision must be one of fp32, bf16, fp16, got 'int8'"):
        tok.set_precision("int8")
    with pytest.raises(InputError, match="encode=True goes with a reduced precision"):
        tok.set_precision("fp32", encode=True)
    monkeypatch.setattr(zoo.api, "cpu_has_native", lambda precision: False)
    with pytest.warns(UserWarning, match="no native bf16 kernels.*50-400x slower"):
        tok.set_precision("bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.set_precision("fp32")  # nothing to warn about


def test_cli_precision_flags(model_dir, tmp_path, capsys):
    from zoo.cli import main

    img = tmp_path / "in"
    img.mkdir()
    for i, photo in enumerate(photo_batch(64)):
        Image.fromarray((photo.permute(1, 2, 0) * 255).round().byte().numpy()).save(img / f"{i}.png")
    common = ["-m", str(model_dir), "-q", "--device", "cpu"]
    plain, bf16 = tmp_path / "plain", tmp_path / "bf16"
    assert main(["reconstruct", str(img), "-o", str(plain), *common]) == 0
    assert main(["reconstruct", str(img), "-o", str(bf16), "--precision", "bf16", *common]) == 0
    a, b = (zoo.images.load_images(sorted(d.glob("[0-9].png"))) for d in (plain, bf16))
    assert a.shape == b.shape and 0 < float((a - b).abs().mean()) < 0.03
    codes = tmp_path / "codes.safetensors"
    assert main(["encode", str(img), "-o", str(codes), "--precision", "bf16", "--precision-encode", *common]) == 0
    assert zoo.Codes.load(codes).indices.shape[0] == 2
    capsys.readouterr()
    # encode alone with --precision would silently encode in fp32: refused, and so is --precision-encode alone
    assert main(["encode", str(img), "-o", str(codes), "--precision", "bf16", *common]) == 2
    assert "add --precision-encode" in capsys.readouterr().err
    assert main(["reconstruct", str(img), "-o", str(bf16), "--precision-encode", *common]) == 2
    assert "--precision-encode needs --precision bf16 or fp16" in capsys.readouterr().err


def test_eval_report_names_the_precision(model_dir, tmp_path, capsys):
    from zoo.cli import main

    data = tmp_path / "data"
    data.mkdir()
    for i, photo in enumerate(photo_batch(64)):
        Image.fromarray((photo.permute(1, 2, 0) * 255).round().byte().numpy()).save(data / f"{i}.png")
    rows = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert main(["eval", "-m", str(model_dir), "--data", str(data), "--metrics", "psnr", "--batch-size", "2",
                     "-o", str(out), "--device", "cpu", "--precision", precision]) == 0
        rows[precision] = json.loads((out / "report.json").read_text())["results"][0]
    assert "(bf16 decode) @ " in capsys.readouterr().err
    fp32, bf16 = rows["fp32"], rows["bf16"]
    assert fp32["precision"] == "fp32" and bf16["precision"] == "bf16 decode"
    assert bf16["psnr"] != fp32["psnr"] and abs(bf16["psnr"] - fp32["psnr"]) < 0.5
    assert f"| {bf16['model']} (bf16 decode) |" in (tmp_path / "bf16" / "report.md").read_text()
    assert f"| {fp32['model']} |" in (tmp_path / "fp32" / "report.md").read_text()


@pytest.fixture(scope="module")
def bench() -> Iterator:
    yield from benchmark_script("precision.py")


def test_benchmark_prints_agreement_psnr_and_times(bench, model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i, photo in enumerate(photo_batch(64, names=("astronaut", "coffee", "chelsea"))):
        Image.fromarray((photo.permute(1, 2, 0) * 255).round().byte().numpy()).save(data / f"{i}.png")
    bench.main(["--data", str(data), "--models", str(model_dir), "--precisions", "bf16", "--batch-size", "2",
                "--repeats", "1"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {model_dir}")]
    assert len(rows) == 1
    name, weights, precision, equal, vs_fp32, psnrs, enc, dec = (c.strip() for c in rows[0])
    assert (weights, precision) == ("saved", "bf16")
    assert 60 <= float(equal.rstrip(" %")) <= 100 and 20 < float(vs_fp32) < 100
    fp32, decode, both = (float(v) for v in psnrs.split(" / "))
    assert abs(decode - fp32) < 1 and abs(both - fp32) < 1  # the photos' PSNR barely moves
    for cell in (enc, dec):  # "fp32 ms / bf16 ms (ratio)"
        times, ratio = cell.split(" (")
        fp32_ms, p_ms = (float(t) for t in times.split(" / "))
        assert fp32_ms > 0 and p_ms > 0 and float(ratio.rstrip(")")) == pytest.approx(fp32_ms / p_ms, rel=0.01, abs=0.006)
