"""The run-time shims of benchmarks/vs_official.py (the zoo side only: no official code is needed or run).

ImageFolder's and ALIT's official builds are run there without editing the user's checkout; these tests hold the
shims to what the builders rely on: each is active only inside its `with` block and leaves the process as it was.
The last test holds its memory probe to counting what a batch allocates.
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Iterator

import pytest
import torch

from conftest import benchmark_script


@pytest.fixture(scope="module")
def bench() -> Iterator[types.ModuleType]:
    yield from benchmark_script("vs_official.py")


def test_both_new_families_are_registered(bench):
    assert bench.BUILDERS["imagefolder"][1:] == ("imagefolder", "imagefolder-4096")
    assert bench.BUILDERS["alit"][1:] == ("alit", "alit-small")


def test_cpu_get_device_is_scoped(bench):
    """ALIT's `.to(x.get_device())` works on a CPU inside the block; outside, get_device() is the stock -1."""
    x = torch.zeros(2)
    with bench.cpu_get_device():
        assert x.to(x.get_device()).device == torch.device("cpu")
    assert x.get_device() == -1 and "get_device" not in torch.Tensor.__dict__
    with pytest.raises(RuntimeError), bench.cpu_get_device():
        raise RuntimeError("the official call failed")
    assert "get_device" not in torch.Tensor.__dict__  # restored on errors too


def test_stubs_only_for_packages_that_are_not_installed(bench, monkeypatch):
    missing = "zoo_test_no_such_package"
    monkeypatch.delitem(sys.modules, missing, raising=False)
    bench.stub_missing_modules({missing: {"LightningModule": torch.nn.Module}, "json": {"dumps": None}})
    try:
        assert sys.modules[missing].LightningModule is torch.nn.Module
        import json

        assert json.dumps({}) == "{}"  # an installed package is never shadowed
    finally:
        sys.modules.pop(missing, None)


def test_no_pretrained_download_forces_random_init_while_active(bench):
    calls = []
    fake = types.SimpleNamespace(create_model=lambda name, **kw: calls.append((name, kw)))
    original = fake.create_model
    with bench.no_pretrained_download(fake):
        fake.create_model("vit_base_patch14_dinov2.lvd142m", pretrained=True, img_size=256)
    assert calls == [("vit_base_patch14_dinov2.lvd142m", {"pretrained": False, "img_size": 256})]
    assert fake.create_model is original


def test_working_directory_and_process_group_are_undone(bench, tmp_path):
    import torch.distributed as dist

    before = os.getcwd()
    with pytest.raises(KeyError), bench.working_directory(tmp_path):
        assert Path.cwd() == tmp_path.resolve()
        raise KeyError("a missing config")
    assert os.getcwd() == before
    with bench.one_process_group():
        assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
    assert not dist.is_initialized()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS from /proc (Linux)")
def test_peak_memory_counts_a_batch_that_reuses_freed_heap_memory(bench):
    """A batch whose tensors land on heap pages freed earlier (while the models were built) must still count:
    200 MB of 64 KB tensors, allocated and freed, then allocated again inside the measured call."""

    def fill() -> list[torch.Tensor]:
        return [torch.ones(16_000) for _ in range(3200)]

    freed = fill()
    del freed
    kept: list = []
    growth = bench.peak_rss_growth(lambda: kept.append(fill()))
    assert 150 < growth < 260, growth
