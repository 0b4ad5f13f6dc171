"""Shard patterns: brace ranges expand to exactly their names (never a glob), missing shards are named, and
readers (processes x workers) split whole shards between them without opening the others'."""
import io
import logging
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import photo
from zoo.eval.data import loader, parse_data
from zoo.shards import expand_braces, share

ON_DISK = ("000", "005", "009", "010", "123")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Tar shards 000, 005, 009, 010, 123, each with two 32x32 crops of a real photo (webdataset layout)."""
    root = tmp_path_factory.mktemp("shards")
    img = photo("astronaut")
    for n, name in enumerate(ON_DISK):
        with tarfile.open(root / f"shard-{name}.tar", "w") as tar:
            for k in range(2):
                crop = img[64 * n + 32 * k: 64 * n + 32 * k + 32, 100:132]
                buf = io.BytesIO()
                Image.fromarray(np.ascontiguousarray(crop)).save(buf, format="PNG")
                info = tarfile.TarInfo(f"{name}_{k}.png")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))
    return root


def test_brace_range_is_exact_and_names_missing_shards(shards, caplog):
    with caplog.at_level(logging.WARNING, logger="zoo.eval.data"):
        spec = parse_data(str(shards / "shard-{000..009}.tar"))
    assert spec.kind == "tar"
    assert [p.rsplit("-", 1)[1] for p in spec.items] == ["000.tar", "005.tar", "009.tar"]  # not 010 nor 123
    missing = [p.rsplit("-", 1)[1][:3] for p in spec.missing]
    assert missing == ["001", "002", "003", "004", "006", "007", "008"]
    assert "7 shard(s)" in caplog.text and "shard-001.tar" in caplog.text and "shard-008.tar" in caplog.text
    keys = [k for ks, _ in loader(spec, 16, batch_size=4) for k in ks]
    assert sorted({k.split("/")[-1][:3] for k in keys}) == ["000", "005", "009"] and len(keys) == 6
    assert expand_braces("a{1..3}{x,y}") == ["a1x", "a1y", "a2x", "a2y", "a3x", "a3y"]


def test_two_ranks_read_disjoint_shards_and_open_only_their_own(shards, monkeypatch):
    spec = parse_data(str(shards / "shard-{000..009}.tar"))
    opened: dict[int, list[str]] = {0: [], 1: []}
    real_open = tarfile.open
    got: dict[int, list[str]] = {}
    for rank in (0, 1):
        monkeypatch.setattr(tarfile, "open", lambda name, *a, **k: (opened[rank].append(str(name)),
                                                                    real_open(name, *a, **k))[1])
        got[rank] = [k for ks, _ in loader(spec, 16, batch_size=2, rank=rank, world=2) for k in ks]
    monkeypatch.setattr(tarfile, "open", real_open)
    shards_of = {r: {k.rsplit("/", 1)[0] for k in got[r]} for r in got}
    assert shards_of[0] and shards_of[1] and not shards_of[0] & shards_of[1]
    assert sorted(got[0] + got[1]) == sorted(k for ks, _ in loader(spec, 16, batch_size=2) for k in ks)
    assert {o for o in opened[0]} == shards_of[0] and {o for o in opened[1]} == shards_of[1]  # never the others'


def test_share_splits_over_processes_and_workers():
    items = list(range(10))
    parts = [share(items, rank * 2 + worker, 4) for rank in range(2) for worker in range(2)]
    assert sorted(x for p in parts for x in p) == items
    assert all(not set(a) & set(b) for i, a in enumerate(parts) for b in parts[i + 1:])


def test_no_shard_of_the_range_on_disk_is_an_error(shards):
    from zoo.errors import InputError

    with pytest.raises(InputError, match="no files match .*shard-{200..209}.tar"):
        parse_data(str(shards / "shard-{200..209}.tar"))
