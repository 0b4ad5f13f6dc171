"""Two writers and a reader on one model folder, as separate processes: every save succeeds, and every load sees
one complete save (config and weights of the same model, sha256 verified), never a mix or a half-written file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

import zoo
from conftest import FUZZ_COUNTS
from zoo.families.vqgan import TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys, time, zoo
source, target, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
model = zoo.load(source)
saves, end = 0, time.time() + seconds
while time.time() < end or saves < 3:
    model.save_pretrained(target)
    saves += 1
print("SAVES", saves)
"""

READER = r"""
import collections, json, sys, time, zoo
target, seconds = sys.argv[1], float(sys.argv[2])
seen, end = collections.Counter(), time.time() + seconds
while time.time() < end or sum(seen.values()) < 3:
    tok = zoo.load(target)  # raises on a mixed or half-written folder (sha256, strict keys)
    seen[tok.fingerprint] += 1
print("SEEN", json.dumps(seen))
"""


def test_two_writers_and_a_reader_on_one_folder(tmp_path, request):
    torch.manual_seed(0)
    a = zoo.build("vqgan", TINY_CONFIG)
    a.save_pretrained(tmp_path / "a")
    torch.manual_seed(1)
    b = zoo.build("vqgan", {**TINY_CONFIG, "codebook_size": 32})  # another config too: a mix could not load
    b.save_pretrained(tmp_path / "b")
    target = tmp_path / "shared"
    a.save_pretrained(target)
    (target / "README.md").write_text("kept across saves\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    seconds = "4"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / src), str(target), seconds],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for src in "ab"]
    procs.append(subprocess.Popen([sys.executable, "-c", READER, str(target), seconds], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env))
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    saves = [int(out.split("SAVES")[1]) for out, _ in outputs[:2]]
    seen = json.loads(outputs[2][0].split("SEEN")[1])
    assert set(seen) <= {a.fingerprint, b.fingerprint}, seen  # only whole models, never a mix
    assert all(n >= 3 for n in saves) and sum(seen.values()) >= 3
    # the folder holds one complete model, the other files survived, and no temp folder is left behind
    final = zoo.load(target)
    assert final.fingerprint in (a.fingerprint, b.fingerprint)
    assert (target / "README.md").read_text() == "kept across saves\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    store = request.config.stash.get(FUZZ_COUNTS, None)
    if store is None:
        store = request.config.stash[FUZZ_COUNTS] = {}
    store["class 3: atomic saves (two writers, one reader): saves + loads"] = sum(saves) + sum(seen.values())


def test_carry_over_rereads_a_folder_swapped_away_while_it_was_listed(tmp_path, monkeypatch):
    """The race behind a lost README.md: a writer lists the published folder while another writer swaps its own
    folder in and deletes the old one, so the listing misses the README. The carry-over must notice that the path
    now names another folder and read that one (which its writer carried the README into)."""
    from zoo import atomic

    final, stage = tmp_path / "shared", tmp_path / "stage"
    final.mkdir()
    stage.mkdir()
    (final / "README.md").write_text("kept\n")
    (final / "config.json").write_text("{}")
    theirs = tmp_path / "theirs"  # the other writer's staged folder, README carried in
    theirs.mkdir()
    (theirs / "README.md").write_text("kept\n")
    (theirs / "config.json").write_text("{}")
    real_listdir, calls = os.listdir, []

    def listdir_during_a_swap(path):
        calls.append(path)
        if len(calls) == 1:  # the other writer publishes, then deletes the folder being listed, mid-listing
            names = [n for n in real_listdir(path) if n != "README.md"]
            (final / "README.md").unlink()
            os.rename(final, tmp_path / "old")
            os.rename(theirs, final)
            return names
        return real_listdir(path)

    monkeypatch.setattr(atomic.os, "listdir", listdir_during_a_swap)
    atomic._carry_over(final, stage)
    assert (stage / "README.md").read_text() == "kept\n"
    assert len(calls) == 2
