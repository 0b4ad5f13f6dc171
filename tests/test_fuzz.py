"""Hostile input, by class: a corpus of bad images, codes files, checkpoints, configs, option values and output
paths driven through every command of `zoo` and the Python loaders.

Every case must end in exit 2 with one line on stderr and no traceback (the CLI), or a typed `ZooError` (Python);
the image-size cases also run in a real subprocess whose peak memory is bounded. The number of cases per class is
printed at the end of the run (conftest's terminal summary) and checked against a floor here.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
import zoo.images
from conftest import FUZZ_COUNTS, photo
from zoo.cli import main
from zoo.errors import CheckpointError, ConfigError, InputError, ZooError
from zoo.families.vqgan import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {
    1: "codes decoded by the wrong model / layout",
    2: "folder integrity (sha256)",
    3: "atomic saves (see test_concurrency.py)",
    4: "images: size, bombs, corrupt files",
    5: "output paths, devices, option values, name clashes",
    6: "training data",
    7: "tampered codes metadata",
    8: "config and weight validation",
    9: "stale results and refused settings",
}
COUNTS: Counter = Counter()


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------
def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        rc = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return rc, out, err


def expect_exit2(cls: int, argv: list, capsys, contains: str | None = None) -> str:
    """One CLI case of class `cls`: exit 2, one line on stderr, no traceback."""
    rc, out, err = cli(argv, capsys)
    lines = [l for l in err.splitlines() if l.strip()]
    assert rc == 2, f"{argv}: rc {rc}\n{err}"
    assert len(lines) == 1, f"{argv}: stderr is not one line:\n{err}"
    assert "Traceback" not in err and "error" in lines[0], err
    if contains is not None:
        assert contains.lower() in lines[0].lower(), (contains, lines[0])
    COUNTS[cls] += 1
    return lines[0]


def expect_error(cls: int, fn, kind: type = ZooError, contains: str | None = None) -> ZooError:
    """One Python case of class `cls`: a typed ZooError (of `kind`)."""
    with pytest.raises(kind) as info:
        fn()
    assert isinstance(info.value, ZooError)
    if contains is not None:
        assert contains.lower() in str(info.value).lower(), (contains, str(info.value))
    COUNTS[cls] += 1
    return info.value


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) with a tiny, incomplete IDAT: tens of bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: two tiny models (different weights, same config), photos, codes, a generator
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    a = zoo.build("vqgan", TINY_CONFIG)
    a.save_pretrained(root / "model_a")
    torch.manual_seed(1)
    zoo.build("vqgan", TINY_CONFIG).save_pretrained(root / "model_b")
    photos = [save_png(root / "photos" / f"{n}.png", photo(n)[:160, :160]) for n in ("astronaut", "coffee")]
    codes = root / "codes.safetensors"
    a.encode(zoo.images.load_images(photos, size=64)).save(codes)
    from zoo.generate import build_generator, save_generator

    gen = build_generator(dict(codebook_size=64, seq_len=16, num_classes=4, width=32, depth=2, heads=4, mlp_dim=64),
                          dict(num_steps=2), tokenizer=str(root / "model_a"))
    save_generator(gen, root / "gen")
    (root / "a_file.txt").write_text("not a folder\n")
    return {"root": root, "a": root / "model_a", "b": root / "model_b", "photos": photos, "codes": codes,
            "gen": root / "gen", "file": root / "a_file.txt", "tok": a}


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    store = request.config.stash.get(FUZZ_COUNTS, None)
    if store is None:
        store = request.config.stash[FUZZ_COUNTS] = {}
    store.update(
        {f"class {k}: {CLASSES[k]}": v for k, v in sorted(COUNTS.items())})


def tamper_codes(src: Path, dst: Path, layout=None, tensors=None, meta=None) -> Path:
    """A copy of a codes file with its layout metadata / tensors replaced."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        old_meta = dict(f.metadata())
        old = {k: f.get_tensor(k) for k in f.keys()}
    if layout is not None:
        old_meta["layout"] = layout if isinstance(layout, str) else json.dumps(layout)
    if meta is not None:
        old_meta = meta
    save_file(old if tensors is None else tensors(old), str(dst), metadata=old_meta)
    return dst


# ---------------------------------------------------------------------------------------------------------------
# 1. codes carry the fingerprint of the model that made them; layouts are checked
# ---------------------------------------------------------------------------------------------------------------
def test_1_codes_decode_only_with_the_model_that_made_them(world, tmp_path, capsys):
    a, b, codes = world["a"], world["b"], world["codes"]
    rc, _, err = cli(["decode", codes, "-m", a, "-o", tmp_path / "ok", "-q", "--device", "cpu"], capsys)
    assert rc == 0, err  # its own model decodes it
    msg = expect_exit2(1, ["decode", codes, "-m", b, "-o", tmp_path / "d", "-q", "--device", "cpu"], capsys,
                       "another model")
    assert "fingerprint" in msg
    loaded_b = zoo.load(b)
    expect_error(1, lambda: loaded_b.decode(zoo.Codes.load(codes)), InputError, "another model")
    # the fingerprint survives moves, and changes when weights change in place
    tok = zoo.load(a)
    fp = tok.fingerprint
    assert tok.to(torch.bfloat16).fingerprint == fp and zoo.load(a, dtype="bf16").fingerprint == fp
    with torch.no_grad():
        tok.decoder.conv_out.bias.add_(1e-3)
    expect_error(1, lambda: tok.decode(zoo.Codes.load(codes)), InputError, "another model")
    # a grid that is not the model's: refused, not decoded to a wrongly shaped image
    wrong_grid = tamper_codes(codes, tmp_path / "grid.safetensors",
                              layout={"grid": [2, 8], "codebook_sizes": [64], "model": "vqgan"})
    expect_exit2(1, ["decode", wrong_grid, "-m", a, "-o", tmp_path / "g", "-q", "--device", "cpu"], capsys, "grid")
    expect_error(1, lambda: zoo.load(a).decode(zoo.Codes.load(wrong_grid)), InputError, "grid")
    # a fingerprint edited by hand is not the model's either
    forged = tamper_codes(codes, tmp_path / "forged.safetensors",
                          layout={"grid": [4, 4], "codebook_sizes": [64], "fingerprint": "0" * 16})
    expect_exit2(1, ["decode", forged, "-m", a, "-o", tmp_path / "f", "-q", "--device", "cpu"], capsys)
    # a model of another size: too many tokens / other codebook
    torch.manual_seed(0)
    big = zoo.build("vqgan", {**TINY_CONFIG, "image_size": 128})
    big.save_pretrained(tmp_path / "big")
    expect_exit2(1, ["decode", codes, "-m", tmp_path / "big", "-o", tmp_path / "h", "-q", "--device", "cpu"], capsys)


# ---------------------------------------------------------------------------------------------------------------
# 2. every folder records and verifies its weights' sha256
# ---------------------------------------------------------------------------------------------------------------
def test_2_folders_record_and_verify_their_weights(world, tmp_path, capsys):
    import shutil

    meta = json.loads((world["a"] / "config.json").read_text())
    assert len(meta["weights_sha256"]) == 64
    flipped = tmp_path / "flipped"
    shutil.copytree(world["a"], flipped)
    data = bytearray((flipped / "model.safetensors").read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    (flipped / "model.safetensors").write_bytes(bytes(data))
    err = expect_error(2, lambda: zoo.load(flipped), CheckpointError, "model.safetensors")
    assert "sha256" in str(err)
    expect_exit2(2, ["reconstruct", world["photos"][0], "-m", flipped, "-o", tmp_path / "r", "-q", "--device", "cpu"],
                 capsys, "changed after it was written")
    for bad in ("zz", 5, ["x"]):
        folder = tmp_path / f"badsha{len(str(bad))}"
        shutil.copytree(world["a"], folder)
        meta_bad = dict(meta, weights_sha256=bad)
        (folder / "config.json").write_text(json.dumps(meta_bad))
        expect_error(2, lambda: zoo.load(folder), CheckpointError, "weights_sha256")
    # a weights file from another save beside this config
    mixed = tmp_path / "mixed"
    shutil.copytree(world["a"], mixed)
    shutil.copy(world["b"] / "model.safetensors", mixed / "model.safetensors")
    expect_error(2, lambda: zoo.load(mixed), CheckpointError, "sha256")
    # missing parts
    shutil.copytree(world["a"], tmp_path / "noweights")
    (tmp_path / "noweights" / "model.safetensors").unlink()
    expect_error(2, lambda: zoo.load(tmp_path / "noweights"), CheckpointError, "model.safetensors")


# ---------------------------------------------------------------------------------------------------------------
# 4. images: checked from the header before any pixel is decoded; bounded memory
# ---------------------------------------------------------------------------------------------------------------
def bad_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.png"
    Image.fromarray(photo("coffee")[:96, :96]).save(good)
    files = {
        "truncated.png": good.read_bytes()[:300],
        "empty.png": b"",
        "text.png": b"hello, I am not an image\n" * 4,
        "aspect.png": None,  # written below: 1 x 65536 pixels, a few hundred bytes
        "huge_header.png": png_header_only(60000, 60000),  # a decompression bomb by Pillow's own limit
        "big_header.png": png_header_only(9000, 9000),  # 81 M pixels: over the zoo's bound, under Pillow's
        "zero.png": png_header_only(0, 10),
        "garbage.jpg": b"\xff\xd8\xff\xe0" + os.urandom(200),
        "garbage.gif": b"GIF89a" + os.urandom(64),
    }
    out = []
    for name, data in files.items():
        path = folder / name
        if data is None:
            Image.new("L", (1, 65536), 128).save(path)
        else:
            path.write_bytes(data)
        out.append(path)
    return out


def test_4_bad_images_fail_cleanly_in_every_reader(world, tmp_path, capsys):
    bad = bad_images(tmp_path / "bad")
    for path in bad:
        expect_exit2(4, ["reconstruct", path, "-m", world["a"], "-o", tmp_path / "r", "-q", "--device", "cpu"],
                     capsys, path.name)
        expect_exit2(4, ["encode", path, "-m", world["a"], "-o", tmp_path / "c.safetensors", "-q",
                         "--device", "cpu"], capsys)
        expect_error(4, lambda: zoo.images.load_images([path], size=64), InputError)
    # arrays and tensors of absurd shapes are refused the same way, before the resize
    expect_error(4, lambda: zoo.images.load_images(np.zeros((1, 70000), np.uint8), size=64), InputError, "aspect")
    expect_error(4, lambda: zoo.images.load_images(torch.zeros(1, 3, 1, 70000), size=64), InputError, "aspect")
    expect_error(4, lambda: zoo.images.to_tensor(Image.new("L", (1, 70000))), InputError, "aspect")


def test_4_eval_skips_and_counts_bad_images(world, tmp_path, capsys):
    data = tmp_path / "data"
    bad = bad_images(data)
    for p in world["photos"]:
        (data / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "report"
    rc, _, err = cli(["eval", "-m", world["a"], "--data", data, "--metrics", "psnr", "--batch-size", "4", "-o", out,
                      "-q", "--device", "cpu"], capsys)
    assert rc == 0, err
    result = json.loads((out / "report.json").read_text())["results"][0]
    assert result["skipped"] == len(bad) and result["images"] == 3  # good.png + two photos
    COUNTS[4] += 1
    expect_exit2(4, ["eval", "-m", world["a"], "--data", data, "--metrics", "psnr", "--on-error", "fail", "-o",
                     tmp_path / "r2", "-q", "--device", "cpu"], capsys, "cannot read image")


MEMORY_SCRIPT = r"""
import resource, sys
from zoo.cli import main
codes = [main(["reconstruct", f, "-m", sys.argv[1], "-o", sys.argv[2], "-q", "--device", "cpu"]) for f in sys.argv[3:]]
print("RC", codes)
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_4_image_size_cases_run_in_bounded_memory(world, tmp_path):
    """A real subprocess: every bad image through `zoo reconstruct`; its peak memory stays under 1.5 GB (the 1 x
    65536 PNG alone, resized to a 64-pixel short side, would need 3 GB)."""
    bad = [p for p in bad_images(tmp_path / "bad") if p.name in ("aspect.png", "huge_header.png", "big_header.png")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(world["a"]), str(tmp_path / "out"),
                           *map(str, bad)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"RC {[2] * len(bad)}" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([l for l in proc.stderr.splitlines() if l.strip()]) == len(bad)  # one line each
    peak_mb = int(proc.stdout.split("MAXRSS_KB")[1].split()[0]) / 1024
    assert peak_mb < 2048, f"peak memory {peak_mb:.0f} MB"  # decoding the 1x65536 PNG alone would take ~3 GB
    COUNTS[4] += len(bad)


def test_4_pil_images_honour_exif_orientation_like_paths(tmp_path):
    img = Image.fromarray(photo("astronaut")[:64, :96])
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    from_path = zoo.images.to_tensor(path)
    with Image.open(path) as opened:
        from_pil = zoo.images.to_tensor(opened)
    assert from_path.shape == from_pil.shape == (3, 96, 64)
    assert torch.equal(from_path, from_pil)


# ---------------------------------------------------------------------------------------------------------------
# 5. output paths, devices, option values, and outputs that must not overwrite each other
# ---------------------------------------------------------------------------------------------------------------
def writing_commands(world, out_dir: Path | str, out_file: Path | str) -> list[list]:
    """Every command that writes, with -o pointing at `out_dir` (folder outputs) / `out_file` (file outputs)."""
    a, photos, codes, gen = world["a"], world["photos"], world["codes"], world["gen"]
    common = ["-q", "--device", "cpu"]
    return [
        ["reconstruct", photos[0], "-m", a, "-o", out_dir, *common],
        ["encode", photos[0], "-m", a, "-o", out_file, *common],
        ["decode", codes, "-m", a, "-o", out_dir, *common],
        ["eval", "-m", a, "--data", photos[0].parent, "--metrics", "psnr", "-o", out_dir, *common],
        ["generate", "-g", gen, "--class", "1", "-o", out_dir, *common],
        ["eval-generator", "-g", gen, "--ref-stats", world["file"], "-n", "2", "-o", out_file, *common],
        ["convert", "maskgit-vqgan", "--checkpoint", world["file"], "-o", out_dir],
        ["card", "maskgit-vqgan", "-o", out_file],
        ["train", "vqgan/tiny", "-o", out_dir, "-q"],
        ["train-generator", "generator/tiny", "-o", out_dir, "-q"],
    ]


def test_5_bad_output_paths_in_every_writing_command(world, tmp_path, capsys):
    file_, folder = world["file"], tmp_path / "a_folder"
    folder.mkdir()
    under_file = file_ / "sub"
    places = [(file_, folder), (under_file, under_file / "x.safetensors"), ("/proc/zoo-fuzz/out", "/proc/zoo/c.st"),
              ("/proc", "/proc/codes.safetensors")]  # an existing place nobody can write into, root included
    if os.geteuid() != 0:  # root writes anywhere: permissions cannot be tested as root
        ro = tmp_path / "read_only"
        ro.mkdir()
        ro.chmod(0o500)
        places.append((ro / "out", ro / "c.safetensors"))
    for out_dir, out_file in places:
        for argv in writing_commands(world, out_dir, out_file):
            expect_exit2(5, argv, capsys, "-o")


def test_5_missing_output_folders_are_created(world, tmp_path, capsys):
    target = tmp_path / "new" / "deeper" / "codes.safetensors"
    rc, out, err = cli(["encode", world["photos"][0].parent, "-m", world["a"], "-o", target, "-q", "--device", "cpu"],
                       capsys)
    assert rc == 0 and target.is_file() and target.with_name("codes.files.txt").is_file(), err
    COUNTS[5] += 1


def test_5_bad_devices_and_option_values(world, tmp_path, capsys):
    a, photo0 = world["a"], world["photos"][0]
    for device in ("tpu", "cuda:99", "cpu:x", "", "meta"):
        expect_exit2(5, ["reconstruct", photo0, "-m", a, "-o", tmp_path / "r", "-q", "--device", device], capsys)
    expect_error(5, lambda: zoo.load(a, device="nonsense"), InputError)
    expect_error(5, lambda: zoo.load(a, dtype="int8"), InputError)
    options = [
        ["reconstruct", photo0, "-m", a, "--batch-size", "0"],
        ["reconstruct", photo0, "-m", a, "--batch-size", "-3"],
        ["reconstruct", photo0, "-m", a, "--batch-size", "many"],
        ["reconstruct", photo0, "-m", a, "--crop", "diagonal"],
        ["reconstruct", photo0, "-m", a, "--tokens", "x", "-o", tmp_path / "r", "--device", "cpu"],
        ["encode", photo0, "-m", a, "--tokens", "16,16", "-o", tmp_path / "c.st", "--device", "cpu"],
        ["eval", "-m", a, "--data", photo0, "--limit", "0"],
        ["eval", "-m", a, "--data", photo0, "--batch-size", "0"],
        ["eval", "-m", a, "--data", photo0, "--metrics", "fid,psnr", "-o", tmp_path / "e"],
        ["train", "vqgan/tiny", "--set", "optim.lr=nan", "-o", tmp_path / "t"],
        ["train", "vqgan/tiny", "--set", "optim.lr=-1", "-o", tmp_path / "t"],
        ["train", "vqgan/tiny", "--set", "optim.lr=.inf", "-o", tmp_path / "t"],
        ["train", "vqgan/tiny", "--set", "data.batch_size=abc", "-o", tmp_path / "t"],
        ["train", "vqgan/tiny", "--set", "model.hidden_channels=-4", "-o", tmp_path / "t"],
        ["train", "vqgan/tiny", "--set", "nonsense", "-o", tmp_path / "t"],
        ["generate", "-g", world["gen"], "--batch-size", "0"],
        ["nonexistent-command"],
    ]
    for argv in options:
        expect_exit2(5, argv, capsys)


def test_5_same_file_names_in_different_folders_do_not_overwrite(world, tmp_path, capsys):
    one = save_png(tmp_path / "one" / "x.png", photo("astronaut")[:128, :128])
    two = save_png(tmp_path / "two" / "x.png", photo("coffee")[:128, :128])
    grid = save_png(tmp_path / "one" / "grid.png", photo("chelsea")[:128, :128])  # the comparison grid's name
    out = tmp_path / "rec"
    rc, printed, err = cli(["reconstruct", one, two, grid, "-m", world["a"], "-o", out, "-q", "--device", "cpu"],
                           capsys)
    assert rc == 0, err
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["grid.png", "grid_1.png", "one__x.png", "two__x.png"], written
    assert "renamed" in printed and "3 reconstructions" in printed
    assert not torch.equal(zoo.images.to_tensor(out / "one__x.png"), zoo.images.to_tensor(out / "two__x.png"))
    codes = tmp_path / "codes.safetensors"
    assert cli(["encode", one, two, "-m", world["a"], "-o", codes, "-q", "--device", "cpu"], capsys)[0] == 0
    rc, printed, err = cli(["decode", codes, "-m", world["a"], "-o", tmp_path / "dec", "-q", "--device", "cpu"],
                           capsys)
    assert rc == 0 and sorted(p.name for p in (tmp_path / "dec").glob("*.png")) == ["one__x.png", "two__x.png"]
    COUNTS[5] += 2


# ---------------------------------------------------------------------------------------------------------------
# 6. training data: one bad image is skipped and counted, not a crash
# ---------------------------------------------------------------------------------------------------------------
def test_6_a_truncated_training_image_is_skipped(world, tmp_path, caplog):
    from zoo.train import train

    data = tmp_path / "data"
    for name in ("astronaut", "coffee", "chelsea"):
        save_png(data / f"{name}.png", photo(name)[:160, :160])
    (data / "broken.png").write_bytes((data / "coffee.png").read_bytes()[:400])
    (data / "aspect.png").write_bytes(b"")
    Image.new("L", (1, 65536)).save(data / "aspect.png")
    result = train(ROOT / "recipes" / "vqgan" / "tiny.yaml",
                   [f"data.paths=[{data}]", "train.max_steps=3", "train.save_every=3", "train.log_every=1",
                    "train.threads=1", "data.batch_size=5", "train.ema_decay=null"],
                   output=tmp_path / "run", quiet=False)
    assert result.model_dir is not None and result.step == 3
    err = caplog.text  # messages go through logging ("zoo: ..." on the command line)
    assert "skipping an unreadable training image" in err and "2 unreadable training image(s) were skipped" in err
    COUNTS[6] += 2


# ---------------------------------------------------------------------------------------------------------------
# 7. tampered codes metadata
# ---------------------------------------------------------------------------------------------------------------
def test_7_tampered_codes_files(world, tmp_path, capsys):
    codes = world["codes"]
    layouts = ["{not json", "[1, 2]", "null", "7", {"grid": "ab"}, {"grid": [4]}, {"grid": [4, 4.5]},
               {"grid": [0, 16]}, {"codebook_sizes": [-1]}, {"codebook_sizes": []}, {"codebook_sizes": 64},
               {"model": 5}, {"model": ["a"]}, {"scales": [True]}, {"fingerprint": 12}, {"extra": 1},
               {"folded_sizes": "x"}]
    tensors = [
        lambda t: {**t, "lengths": torch.ones(2, 2, dtype=torch.int64)},
        lambda t: {**t, "lengths": torch.ones(5, dtype=torch.int64)},
        lambda t: {**t, "lengths": torch.tensor(3, dtype=torch.int64)},
        lambda t: {**t, "lengths": torch.ones(2, dtype=torch.float32)},
        lambda t: {**t, "lengths": torch.full((2,), 99, dtype=torch.int64)},
        lambda t: {"lengths": torch.ones(2, dtype=torch.int64)},
        lambda t: {"indices": t["indices"].float()},
        lambda t: {"indices": t["indices"][0]},
        lambda t: {"indices": t["indices"] + 1000},
        lambda t: {"indices": t["indices"][:, :0]},
    ]
    files = [tamper_codes(codes, tmp_path / f"layout{i}.safetensors", layout=l) for i, l in enumerate(layouts)]
    files += [tamper_codes(codes, tmp_path / f"tensor{i}.safetensors", tensors=t) for i, t in enumerate(tensors)]
    files.append(tamper_codes(codes, tmp_path / "nometa.safetensors", meta={"format": "zoo.codes/1"}))
    files.append(tamper_codes(codes, tmp_path / "otherformat.safetensors", meta={"format": "something"}))
    (tmp_path / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    (tmp_path / "header_huge.safetensors").write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    files += [tmp_path / "garbage.safetensors", tmp_path / "header_huge.safetensors", world["photos"][0]]
    for f in files:
        expect_error(7, lambda: zoo.Codes.load(f), InputError)
        expect_exit2(7, ["decode", f, "-m", world["a"], "-o", tmp_path / "d", "-q", "--device", "cpu"], capsys)
    expect_exit2(7, ["decode", tmp_path / "layout0.safetensors", "-o", tmp_path / "d", "-q"], capsys)  # no -m


# ---------------------------------------------------------------------------------------------------------------
# 8. configs validated by type and range before anything is built; weights by dtype; overrides that do nothing
# ---------------------------------------------------------------------------------------------------------------
def test_8_bad_configs_in_folders_and_builds(world, tmp_path, capsys):
    import shutil

    meta = json.loads((world["a"] / "config.json").read_text())
    bad_configs = [{"hidden_channels": -32}, {"hidden_channels": 0}, {"channel_mult": []}, {"channel_mult": [1, -1]},
                   {"codebook_size": "64"}, {"image_size": 1e12}, {"image_size": 64.5}, {"z_channels": None},
                   {"beta": float("nan")}, {"beta": "0.25"}, {"num_res_blocks": True}, {"hidden_channels": 2 ** 40},
                   {"unknown_key": 1}, {"hidden_channels": 4096, "z_channels": 4096}]
    for i, change in enumerate(bad_configs):
        folder = tmp_path / f"cfg{i}"
        shutil.copytree(world["a"], folder)
        (folder / "config.json").write_text(json.dumps(dict(meta, config={**meta["config"], **change}),
                                                       allow_nan=True))
        expect_error(8, lambda: zoo.load(folder), CheckpointError)
        expect_error(8, lambda: zoo.build("vqgan", {**TINY_CONFIG, **change}), ConfigError)
    for i, whole in enumerate([[], "x", {"family": "vqgan"}, {"family": 5, "config": {}},
                               {"family": "nofamily", "config": {}}, {"family": "vqgan", "config": [1]}]):
        folder = tmp_path / f"whole{i}"
        shutil.copytree(world["a"], folder)
        (folder / "config.json").write_text(json.dumps(whole))
        expect_error(8, lambda: zoo.load(folder), ZooError)
    (tmp_path / "whole0" / "config.json").write_text("{not json")
    expect_error(8, lambda: zoo.load(tmp_path / "whole0"), CheckpointError, "not valid JSON")
    expect_exit2(8, ["reconstruct", world["photos"][0], "-m", tmp_path / "cfg0", "-o", tmp_path / "r", "-q"], capsys)


def test_8_weights_of_the_wrong_dtype_are_refused(world, tmp_path):
    from safetensors.torch import load_file, save_file

    sd = load_file(str(world["a"] / "model.safetensors"))
    key = "decoder.conv_out.weight"
    cases = {"int": {**sd, key: sd[key].to(torch.int32)}, "fp16": {**sd, key: sd[key].half()},
             "bool": {**sd, key: sd[key] > 0}, "all_fp16_but_one": {k: v.half() for k, v in sd.items()} | {key: sd[key]}}
    for name, state in cases.items():
        folder = tmp_path / name
        zoo.load(world["a"]).save_pretrained(folder)
        save_file(state, str(folder / "model.safetensors"))
        meta = json.loads((folder / "config.json").read_text())
        meta.pop("weights_sha256")  # so that the dtype check itself is what refuses it
        (folder / "config.json").write_text(json.dumps(meta))
        expect_error(8, lambda: zoo.load(folder), CheckpointError, "dtype")
        official = {k.replace("quantizer.", "quantize.", 1): v for k, v in state.items()}  # the official key names
        expect_error(8, lambda: zoo.from_official("vqgan", official), CheckpointError, "dtype")
    # all in one other float dtype is fine
    assert zoo.from_official("vqgan", {k.replace("quantizer.", "quantize.", 1): v.half()
                                       for k, v in sd.items()}).dtype == torch.float16


def test_8_overrides_and_official_configs(world, tmp_path):
    expect_error(8, lambda: zoo.load(world["a"], heads=8), InputError, "overrides")
    expect_error(8, lambda: zoo.load(world["a"], codebook_size=64), InputError, "overrides")
    from safetensors.torch import load_file

    sd = {k.replace("quantizer.", "quantize.", 1): v  # the official key names
          for k, v in load_file(str(world["a"] / "model.safetensors")).items()}
    for text in ("resolution: abc\n", "- 1\n- 2\n", "num_embeddings: 12\n", "channel_mult: 7\n", "{{{\n"):
        cfg = tmp_path / "official.yaml"
        cfg.write_text(text)
        expect_error(8, lambda: zoo.from_official("vqgan", sd, config=str(cfg)), ZooError)
    expect_error(8, lambda: zoo.from_official("vqgan", sd, heads=8), ConfigError, "heads")
    expect_error(8, lambda: zoo.from_official("vqgan", sd, image_size=-64), ConfigError)


# ---------------------------------------------------------------------------------------------------------------
# 9. stale results; settings that would write nonsense
# ---------------------------------------------------------------------------------------------------------------
def test_9_an_interrupted_eval_leaves_no_current_looking_report(world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "report"
    argv = ["eval", "-m", world["a"], "--data", world["photos"][0].parent, "--metrics", "psnr", "-o", out, "-q",
            "--device", "cpu"]
    assert cli(argv, capsys)[0] == 0 and (out / "report.json").is_file()
    from zoo.eval.runner import Evaluator

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Evaluator, "run", interrupted)
    rc, _, err = cli(argv, capsys)
    assert rc == 130
    assert not (out / "report.json").exists() and not (out / "report.md").exists()
    assert (out / "previous" / "report.json").is_file() and (out / "EVAL_RUNNING.txt").is_file()
    monkeypatch.undo()
    assert cli(argv, capsys)[0] == 0
    assert (out / "report.json").is_file() and not (out / "previous").exists()
    assert not (out / "EVAL_RUNNING.txt").exists()
    COUNTS[9] += 1


def test_9_temp_folders_of_killed_saves_and_conversions_are_cleaned(world, tmp_path):
    import time

    from zoo.hub import _remove_legacy_temps

    target = tmp_path / "model"
    dead = tmp_path / ".model.staging-999999999-abcd"  # a pid that cannot exist
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"x" * 1000)
    alive = tmp_path / f".model.staging-{os.getppid()}-efgh"  # a live writer's: kept
    alive.mkdir()
    world["tok"].save_pretrained(target)
    assert not dead.exists() and alive.exists()
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    legacy = tmp_path / "conv" / ".tmp-x1"
    legacy.mkdir(parents=True)
    old = time.time() - 7200
    os.utime(legacy, (old, old))
    _remove_legacy_temps(tmp_path / "conv")
    assert not legacy.exists()
    COUNTS[9] += 2


def test_9_generate_refuses_settings_that_write_nonsense(world, tmp_path, capsys):
    gen = world["gen"]
    for extra in (["-n", "0"], ["-n", "-2"], ["--temperature", "nan"], ["--temperature", "-1"],
                  ["--guidance", "inf"], ["--guidance", "nan"], ["--steps", "0"]):
        expect_exit2(9, ["generate", "-g", gen, "--class", "1", "-o", tmp_path / "s", "-q", "--device", "cpu",
                         *extra], capsys)
    assert not (tmp_path / "s").exists()
    from zoo.generate import load_generator

    generator = load_generator(gen)
    for kw in (dict(temperature=float("nan")), dict(guidance=float("inf")), dict(num_steps=0), dict(temperature=-1.0)):
        expect_error(9, lambda: generator.sample([0], **kw), InputError)


# ---------------------------------------------------------------------------------------------------------------
# The CLI's own contract: unexpected failures are one line with a --debug hint; --debug shows the traceback
# ---------------------------------------------------------------------------------------------------------------
def test_unexpected_errors_are_one_line_with_a_debug_hint(world, capsys, monkeypatch):
    import zoo.cli

    def broken(args):
        raise RuntimeError("something nobody expected\nsecond line")

    monkeypatch.setattr(zoo.cli, "cmd_list", broken)
    rc, _, err = cli(["list"], capsys)
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "--debug" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        main(["list", "--debug"])


def test_real_subprocess_runs_exit_2_with_one_line(world, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for argv, cls in (([world["codes"], "-m", world["b"], "-o", tmp_path / "d"], 1),
                      ([world["codes"], "-m", world["a"], "-o", world["file"]], 5)):
        proc = subprocess.run([sys.executable, "-m", "zoo.cli", "decode", *map(str, argv), "-q", "--device", "cpu"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        COUNTS[cls] += 1


def test_every_class_has_cases():
    """Runs last in this file: the floor of cases per class (class 3 lives in test_concurrency.py)."""
    floors = {1: 8, 2: 7, 4: 30, 5: 55, 6: 2, 7: 60, 8: 50, 9: 10}
    short = {k: (COUNTS[k], v) for k, v in floors.items() if COUNTS[k] < v}
    if len(COUNTS) >= 8:  # the whole file ran (not a -k selection)
        assert not short, short
