"""Shared test fixtures: real photos (scikit-image ships them), seeds, small helpers."""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# converted official checkpoints are cached by zoo; tests keep that cache out of the user's home
os.environ.setdefault("ZOO_CACHE", tempfile.mkdtemp(prefix="zoo-test-cache-"))

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def photo(name: str) -> np.ndarray:
    """A real photo from scikit-image's bundled data (astronaut, coffee, chelsea, rocket, ...), HxWx3 uint8."""
    import skimage.data

    return getattr(skimage.data, name)()


def photo_batch(size: int, names=("astronaut", "coffee")) -> torch.Tensor:
    """Real photos brought to size x size with the evaluation protocol: float [B, 3, size, size] in [0, 1]."""
    from zoo.images import load_images

    return load_images([photo(n) for n in names], size=size)


def benchmark_script(filename: str):
    """Import ``benchmarks/<filename>`` (not a package; its ``main()`` sits behind ``__name__ == "__main__"``) as a
    module for the duration of a test module; yields it."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / filename
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def torchrun_env() -> dict:
    """Environment for `python -m torch.distributed.run` subprocess tests: CPU (gloo), one thread per process,
    offline, this checkout importable."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, ACCELERATE_USE_CPU="yes", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(root), str(root / "tests"), os.environ.get("PYTHONPATH", "")]))
    env.pop("LOCAL_RANK", None)
    return env


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random-weight VQGAN saved as a zoo folder (what `zoo train` / `save_pretrained` write)."""
    import zoo
    from zoo.families.vqgan import TINY_CONFIG

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    zoo.build("vqgan", TINY_CONFIG).save_pretrained(d)
    return d


@pytest.fixture
def photos64() -> torch.Tensor:
    return photo_batch(64)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


FUZZ_COUNTS = pytest.StashKey[dict]()  # class name -> number of hostile-input cases run (tests/test_fuzz.py)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """What the run covered: the documented commands run or marked (tests/test_docs.py) and the hostile-input
    cases per class (tests/test_fuzz.py, tests/test_concurrency.py)."""
    import sys

    docs = sys.modules.get("test_docs")
    listing = docs.docs_listing() if docs is not None else []
    if listing:
        terminalreporter.section("documented commands (tests/test_docs.py)")
        for line in listing:
            terminalreporter.write_line(line)
    counts = config.stash.get(FUZZ_COUNTS, None)
    if counts:
        terminalreporter.section("hostile-input cases per class")
        for name, n in sorted(counts.items()):
            terminalreporter.write_line(f"{name}: {n}")
        terminalreporter.write_line(f"total: {sum(counts.values())}")
