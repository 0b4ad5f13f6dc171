"""benchmarks/eval_io.py: the photos it reads and the table it prints (the embedded model, two photos)."""
from __future__ import annotations

from typing import Iterator

import pytest

from conftest import benchmark_script


@pytest.fixture(scope="module")
def bench() -> Iterator:
    yield from benchmark_script("eval_io.py")


def test_sample_photos_are_real_photos_at_the_asked_size(bench, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(bench, "WALLPAPERS", tmp_path / "no-wallpapers")  # scikit-image's photos instead
    folder = bench.sample_photos(tmp_path / "photos", 500)
    files = sorted(folder.glob("*.jpg"))
    assert len(files) >= 6
    sizes = [Image.open(f).size for f in files]
    assert all(min(s) >= 64 for s in sizes) and len(set(sizes)) > 1  # photos as they are, not one synthetic size


def test_prints_one_row_per_setting_with_rates_that_add_up(bench, tmp_path, capsys):
    from PIL import Image

    from zoo.images import skimage_photo

    data = tmp_path / "data"
    data.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(skimage_photo(name)).save(data / f"{name}.jpg", quality=90)
    bench.main(["--data", str(data), "--models", "default", "--workers", "0", "--read-ahead", "0,2",
                "--repeats", "1", "--batch-size", "2"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| default")]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("0", "0"), ("0", "2")]
    for row in rows:
        read, model, wall, ratio = (float(row[i]) for i in range(3, 7))
        assert read > 0 and model > 0 and 0 < wall <= model
        assert ratio == pytest.approx(wall / model, abs=0.01)
    with pytest.raises(SystemExit):
        bench.main(["--data", str(data), "--models", "default", "--repeats", "0"])
