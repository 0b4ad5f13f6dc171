"""Our FID pipeline against torch-fidelity's on the same images, same machine, same Inception file: time ratio and
agreement; and our peak memory as the number of images grows (streaming: it must stay flat).

The images are random 256x256 crops of real photos (scikit-image's bundled ones), written as PNGs; the Inception
file is a random-weight file in the official layout (no download needed; speed does not depend on the weights,
pass --inception-weights for the real one). Each measurement runs in its own subprocess so its peak RSS is its own.

    python benchmarks/fid_speed.py --images 200 --memory 200,2000
    python benchmarks/fid_speed.py --skip-speed --memory 200,2000 --memory-extractor zoo.eval.testing:tiny_extractor
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_crops(folder: Path, n: int, seed: int) -> Path:
    import numpy as np
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    photos = [getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "retina")]
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        s = int(rng.integers(256, min(h, w) + 1))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        Image.fromarray(img[y:y + s, x:x + s]).resize((256, 256), Image.BICUBIC).save(folder / f"{i:05d}.png")
    return folder


def run_ours(a: str, b: str, weights: str, batch: int, extractor: str | None = None) -> dict:
    from zoo.eval import build_extractor, fid

    ext = build_extractor(extractor, weights)  # built before the baseline: its weights are not "growth"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    value = fid(a, b, size=256, crop="none", extractor=ext, batch_size=batch)
    return {"fid": value, "seconds": time.perf_counter() - t0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024}


def run_fidelity(a: str, b: str, weights: str, batch: int) -> dict:
    import torch_fidelity

    t0 = time.perf_counter()
    out = torch_fidelity.calculate_metrics(input1=a, input2=b, fid=True, batch_size=batch, cuda=False,
                                           feature_extractor_weights_path=weights, verbose=False, cache=False)
    return {"fid": out["frechet_inception_distance"], "seconds": time.perf_counter() - t0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(args: argparse.Namespace) -> None:
    if args.child == "ours":
        print(json.dumps(run_ours(args.a, args.b, args.weights, args.batch_size, args.extractor)))
    else:
        print(json.dumps(run_fidelity(args.a, args.b, args.weights, args.batch_size)))


def spawn(which: str, a: Path, b: Path, weights: Path, batch: int, extractor: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--a", str(a), "--b", str(b), "--weights", str(weights),
           "--batch-size", str(batch)] + (["--extractor", extractor] if extractor else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=200, help="images per side for the speed comparison")
    p.add_argument("--memory", default="200,2000", help="image counts for the memory curve (ours only)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--inception-weights", help="the real pt_inception file (default: a random-weight one)")
    p.add_argument("--memory-extractor", default="inception",
                   help="feature extractor of the memory curve: inception, or e.g. zoo.eval.testing:tiny_extractor "
                        "(fast on CPU; the streaming, not the network, decides how memory grows)")
    p.add_argument("--skip-speed", action="store_true", help="only the memory curve")
    p.add_argument("--extractor", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--a", help=argparse.SUPPRESS)
    p.add_argument("--b", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = Path(args.inception_weights) if args.inception_weights else None
        if weights is None:
            from zoo.eval.testing import write_random_inception

            weights = write_random_inception(tmp / "pt_inception-random.pth")
        counts = sorted({args.images, *(int(v) for v in args.memory.split(",") if v)} - {0})
        largest = max(counts)
        write_crops(tmp / "a", largest, seed=0)
        write_crops(tmp / "b", largest, seed=1)
        for n in counts:  # subsets as folders of symlinks
            for side in ("a", "b"):
                sub = tmp / f"{side}{n}"
                sub.mkdir()
                for i in range(n):
                    os.symlink(tmp / side / f"{i:05d}.png", sub / f"{i:05d}.png")
        n = 0 if args.skip_speed else args.images
        if n:
            ours = spawn("ours", tmp / f"a{n}", tmp / f"b{n}", weights, args.batch_size)
            theirs = spawn("fidelity", tmp / f"a{n}", tmp / f"b{n}", weights, args.batch_size)
            rel = abs(ours["fid"] - theirs["fid"]) / abs(theirs["fid"])
            rows.append({"what": "speed", "images_per_side": n, "ours_s": ours["seconds"],
                         "torch_fidelity_s": theirs["seconds"], "ratio_ours_over_fidelity":
                         ours["seconds"] / theirs["seconds"], "fid_ours": ours["fid"],
                         "fid_torch_fidelity": theirs["fid"], "relative_difference": rel})
            print(f"{n} vs {n} images: ours {ours['seconds']:.1f} s, torch-fidelity {theirs['seconds']:.1f} s "
                  f"(ratio {ours['seconds'] / theirs['seconds']:.2f}); FID {ours['fid']:.6f} vs "
                  f"{theirs['fid']:.6f} (relative difference {rel:.1e})")
        for m in (int(v) for v in args.memory.split(",") if v):
            ext = None if args.memory_extractor == "inception" else args.memory_extractor
            r = spawn("ours", tmp / f"a{m}", tmp / f"b{m}", weights, args.batch_size, ext)
            rows.append({"what": "memory", "images_per_side": m, "extractor": args.memory_extractor,
                         "peak_rss_mib": r["peak_rss_mib"], "rss_growth_mib": r["rss_growth_mib"],
                         "seconds": r["seconds"]})
            print(f"ours ({args.memory_extractor}), {m} vs {m} images: peak RSS {r['peak_rss_mib']:.0f} MiB "
                  f"(+{r['rss_growth_mib']:.0f} MiB while streaming), {r['seconds']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
