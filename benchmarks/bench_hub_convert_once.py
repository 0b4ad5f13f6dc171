"""First vs second load of a named model through the hub route: convert once, then read our safetensors copy.

Writes a random-weight official checkpoint of the full-size MaskGIT-VQGAN (torch pickle, the official layout) into
a hand-made huggingface_hub cache, registers an entry pointing at it, and times `zoo.load(name)` offline:
the first load unpickles + converts + writes the zoo cache; later loads read the converted safetensors.

    python benchmarks/bench_hub_convert_once.py
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    import zoo
    from hubcache import add_to_cache
    from huggingface_hub import constants
    from zoo.registry import ModelEntry, register_model

    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    constants.HF_HUB_CACHE = str(tmp / "hf")
    constants.HF_HUB_OFFLINE = True
    os.environ["ZOO_CACHE"] = str(tmp / "zoo")
    torch.manual_seed(0)
    model = zoo.build("vqgan")
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    add_to_cache(tmp / "hf", "bench-org/maskgit", {"maskgit.bin": buf.getvalue()})
    register_model(ModelEntry(name="bench-maskgit", family="vqgan", config={}, hub_repo="bench-org/maskgit",
                              hub_file="maskgit.bin"), overwrite=True)
    n = sum(p.numel() for p in model.parameters())
    times = []
    for _ in range(3):
        t = time.perf_counter()
        zoo.load("bench-maskgit")
        times.append(time.perf_counter() - t)
    print(f"MaskGIT-VQGAN {n / 1e6:.1f}M params, official file {len(buf.getvalue()) / 1e6:.0f} MB: "
          f"first load (unpickle + convert + write cache) {times[0]:.2f} s; "
          f"later loads (converted safetensors; sha256 taken at conversion, remembered by file identity) {times[1]:.2f} s, {times[2]:.2f} s")


if __name__ == "__main__":
    main()
