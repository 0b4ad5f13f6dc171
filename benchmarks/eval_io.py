"""Is `zoo eval` bound by the model or by reading images? Reading alone, the model alone, and the whole evaluation.

    python benchmarks/eval_io.py --models default,onedpiece-s-256 --workers 0,1 --read-ahead 0,2
    python benchmarks/eval_io.py --data ~/imagenet/val --limit 512 --models titok-l32 --workers 0,4 --device cuda

Data: `--data` (any `zoo eval --data` source); by default the photos of /usr/share/backgrounds (Debian's
wallpapers, 1–24 megapixels) saved again as JPEG with the shorter side `--shorter` (default 500, ImageNet's
validation images' size; 0 keeps them as they are) in a temporary folder, or scikit-image's photos where that
folder does not exist. Models: registered names; `default` is the embedded model with its weights, any other name
is built from its config with random weights (the time does not depend on the weights).

For each model and each (`--workers`, `--read-ahead`) setting it prints:
- read: images/s of the reader alone (decode, crop, batch), no model;
- model: images/s of the model alone (encode + decode of the batches, what the report's `images_per_s` counts);
- eval: images/s of the whole pass (`images_per_s_wall`: reading, the model and the metrics), and the share of
  that time the loop waited for images (`input_wait_share`); eval / model near 1 means the model is the bound.
Metrics: PSNR and SSIM (no downloaded weights). One warm-up pass per model, then `--repeats` passes, median.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import zoo
from zoo.eval import EvalConfig, Evaluator
from zoo.eval.data import loader
from zoo.registry import get_entry

WALLPAPERS = Path("/usr/share/backgrounds")


def sample_photos(folder: Path, shorter: int) -> Path:
    """Real photos to read: the wallpapers (resized to `shorter`, re-encoded as JPEG) or scikit-image's photos."""
    from PIL import Image

    from zoo.images import skimage_photo, skimage_photo_names

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in WALLPAPERS.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if WALLPAPERS.is_dir() else []
    if sources:
        for i, path in enumerate(sources):
            img = Image.open(path).convert("RGB")
            if shorter:
                scale = shorter / min(img.size)
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
            img.save(folder / f"{i:03d}.jpg", quality=90)
    else:
        for name in skimage_photo_names():
            Image.fromarray(skimage_photo(name)).convert("RGB").save(folder / f"{name}.jpg", quality=90)
    return folder


def build(name: str, device: str) -> zoo.Tokenizer:
    if name == "default":
        return zoo.load("default").eval().to(device)
    entry = get_entry(name)
    return zoo.build(entry.family, dict(entry.config)).eval().to(device)


def read_rate(data: str, size: int, batch: int, limit: int | None, workers: int, ahead: int) -> float:
    t = time.perf_counter()
    n = sum(b.shape[0] for _, b in loader(data, size, batch, limit=limit, num_workers=workers, ahead=ahead))
    return n / (time.perf_counter() - t)


def add_photo_options(p: argparse.ArgumentParser) -> None:
    """The options of the photo benchmarks (this one and benchmarks/precision.py): data, batch, threads, device."""
    p.add_argument("--data", default=None, help="images to read instead of the sample photos")
    p.add_argument("--shorter", type=int, default=500, help="the sample photos' shorter side (0: as they are)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")


def photo_data(args: argparse.Namespace, tmp: Path) -> str:
    """Sets the thread count; returns `--data`, or a folder of the sample photos made under `tmp`."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return args.data or str(sample_photos(tmp / "photos", args.shorter))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_photo_options(p)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--models", default="default,onedpiece-s-256")
    p.add_argument("--workers", default="0,1")
    p.add_argument("--read-ahead", default="0,2")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be 1 or more (a warm-up pass runs before them)")
    tmp = tempfile.TemporaryDirectory()
    data = photo_data(args, Path(tmp.name))
    aheads = [int(a) for a in args.read_ahead.split(",")]
    settings = []  # (workers, read-ahead): read-ahead is moot with workers, so those run once
    for workers in (int(w) for w in args.workers.split(",")):
        settings += [(workers, a) for a in aheads] if workers == 0 else [(workers, aheads[0])]
    print(f"data: {data} ({'given' if args.data else 'real photos, shorter side ' + str(args.shorter)}); "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, {args.device}")
    print("| model | workers | read-ahead | read img/s | model img/s | eval img/s | eval / model | waiting |")
    print("|---|---|---|---|---|---|---|---|")
    for name in [m for m in args.models.split(",") if m]:
        tok = build(name, args.device)
        size = tok.spec.image_size
        for workers, ahead in settings:
            cfg = EvalConfig(metrics=("psnr", "ssim"), batch_size=args.batch_size, limit=args.limit,
                             num_workers=workers, read_ahead=ahead, pin_memory=args.device.startswith("cuda"),
                             samples=0)
            runs, reads = [], []
            for i in range(args.repeats + 1):
                reads.append(read_rate(data, size, args.batch_size, args.limit, workers, ahead))
                with torch.inference_mode():
                    runs.append(Evaluator(data, cfg).run(tok))
            runs, reads = runs[1:], reads[1:]  # the first pass warms caches (files, allocator, compiled kernels)
            model = statistics.median(r["images_per_s"] for r in runs)
            wall = statistics.median(r["images_per_s_wall"] for r in runs)
            wait = statistics.median(r["input_wait_share"] for r in runs)
            print(f"| {name} | {workers} | {ahead if not workers else '-'} | {statistics.median(reads):.1f} | "
                  f"{model:.2f} | {wall:.2f} | {wall / model:.2f} | {100 * wait:.0f} % |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
