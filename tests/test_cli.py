"""The `zoo` command on real photos: list, info, reconstruct, encode/decode through a codes file, bad input."""
import subprocess
import sys

import pytest
import torch
from PIL import Image

import zoo
from conftest import photo
from zoo.cli import main
from zoo.images import load_images, to_tensor


@pytest.fixture
def photo_files(tmp_path):
    paths = []
    for name in ("astronaut", "coffee", "chelsea"):
        p = tmp_path / "in" / f"{name}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(photo(name)).save(p)
        paths.append(p)
    return paths


def test_list_and_info(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "maskgit-vqgan" in out and "onedpiece-l-256" in out
    assert main(["info", "maskgit-vqgan"]) == 0
    out = capsys.readouterr().out
    assert "54,515,587" in out and "fun-research/TiTok" in out and "rFID: 2.28" in out


def test_reconstruct_writes_pngs_grid_and_psnr(model_dir, photo_files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reconstruct", str(photo_files[0].parent), "-m", str(model_dir), "-o", str(out), "--device", "cpu",
                 "--batch-size", "2", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "3 image(s)" in printed
    assert sorted(p.name for p in out.glob("*.png")) == ["astronaut.png", "chelsea.png", "coffee.png", "grid.png"]
    assert Image.open(out / "grid.png").size == (3 * 66 + 2, 2 * 66 + 2)  # rows: originals, reconstructions
    # the written reconstruction is the model's reconstruction of the protocol crop
    tok = zoo.load(model_dir)
    expected = tok.reconstruct(load_images([photo_files[1]], size=64))[0]
    assert torch.allclose(to_tensor(out / "coffee.png"), expected, atol=0.5 / 255 + 1e-6)


def test_encode_then_decode_round_trip(model_dir, photo_files, tmp_path):
    codes = tmp_path / "codes.safetensors"
    assert main(["encode", *map(str, photo_files), "-m", str(model_dir), "-o", str(codes), "--device", "cpu",
                 "-q"]) == 0
    assert zoo.Codes.load(codes).indices.shape == (3, 16, 1)
    out = tmp_path / "dec"
    assert main(["decode", str(codes), "-m", str(model_dir), "-o", str(out), "--device", "cpu", "-q"]) == 0
    rec = tmp_path / "rec"
    main(["reconstruct", *map(str, photo_files), "-m", str(model_dir), "-o", str(rec), "--device", "cpu", "-q"])
    for p in photo_files:  # decoding the file gives exactly the reconstruction
        assert torch.equal(to_tensor(out / p.name), to_tensor(rec / p.name))


def test_reading_workers_give_the_same_files_in_the_same_order(model_dir, photo_files, tmp_path, capsys):
    """--workers 2 (worker processes, as on a GPU) writes what the background thread writes, in the files' order,
    and a corrupt image read in a worker is the same one-line error."""
    common = ["-m", str(model_dir), "--device", "cpu", "--batch-size", "1", "-q"]
    files = [str(p) for p in (photo_files[2], photo_files[0], photo_files[1])]  # not sorted: order must hold
    for workers in ("0", "2"):
        assert main(["reconstruct", *files, "-o", str(tmp_path / f"rec{workers}"), "--workers", workers, *common]) == 0
        assert main(["encode", *files, "-o", str(tmp_path / f"codes{workers}.safetensors"), "--workers", workers,
                     *common]) == 0
    for name in ("grid.png", *(p.name for p in photo_files)):
        assert (tmp_path / "rec0" / name).read_bytes() == (tmp_path / "rec2" / name).read_bytes(), name
    assert torch.equal(zoo.Codes.load(tmp_path / "codes0.safetensors").indices,
                       zoo.Codes.load(tmp_path / "codes2.safetensors").indices)
    assert (tmp_path / "codes2.files.txt").read_text().split() == files
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo_files[0].read_bytes()[:200])
    capsys.readouterr()
    assert main(["reconstruct", files[0], str(broken), "-o", str(tmp_path / "bad"), "--workers", "1", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.png" in err[0] and "Traceback" not in err[0], err
    assert main(["encode", files[0], "--workers", "-1", *common]) == 2
    assert "--workers must be 0 or more" in capsys.readouterr().err


def test_bad_input_exits_2_with_one_line(model_dir, photo_files, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo_files[0].read_bytes()[:200])
    cases = [
        ["reconstruct", str(broken), "-m", str(model_dir), "--device", "cpu"],
        ["reconstruct", str(photo_files[0]), "-m", "maskgit-vqgn"],
        ["reconstruct", str(tmp_path / "nothing.png"), "-m", str(model_dir)],
        ["reconstruct", str(photo_files[0]), "-m", str(model_dir), "--device", "cpu", "--tokens", "8"],
        ["decode", str(photo_files[0]), "-m", str(model_dir)],
        ["info", "nope"],
    ]
    for argv in cases:
        proc = subprocess.run([sys.executable, "-m", "zoo.cli", *argv], capture_output=True, text=True)
        assert proc.returncode == 2, (argv, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("zoo: error:"), proc.stderr
