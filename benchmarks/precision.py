"""Reduced precision (`Tokenizer.set_precision`): what it changes against fp32 (codes, images) and what it gains.

    python benchmarks/precision.py --models default --precisions bf16,fp16
    python benchmarks/precision.py --models onedpiece-s-256,titok-l32 --device cuda --batch-size 32   # on a GPU

Photos: those of benchmarks/eval_io.py (Debian's wallpapers, else scikit-image's), `--images` of them, read with
the evaluation protocol at the model's size, in batches of `--batch-size`. Models: registered names or folders;
`default` is the embedded model with its trained weights, a folder (save_pretrained) has its own, any other name is
built from its config with random weights (its times hold, its code agreement does not say what the trained
model's would be: the table says which weights).

For each model and precision p (fp32 is the reference) it prints:
- codes equal: the share of indices that `encode` under p (``set_precision(p, encode=True)``) gives as fp32 does;
  decode-only p keeps every code by construction (the encoder runs in fp32);
- decode vs fp32: PSNR (dB) between the fp32 codes decoded under p and decoded in fp32 (how far the images move);
- PSNR against the photos: fp32, p decode, p encode+decode;
- encode and decode time per batch, fp32 / p (> 1: p is faster): all modes interleaved, median of `--repeats`
  rounds after the first (`--repeats 0`: the values only).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_io import add_photo_options, build, photo_data  # noqa: E402  (the same photos and models as the evaluation benchmark)

from zoo.eval.metrics import psnr  # noqa: E402
from zoo.images import list_image_files, load_images, to_uint8  # noqa: E402


def mean_psnr(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Mean PSNR (dB) over the images of two lists of batches (an identical image counts 100 dB)."""
    return float(torch.cat([psnr(to_uint8(x), to_uint8(y)) for x, y in zip(a, b)]).mean())


def timed(fn, *args, **kwargs):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def compare(tok, batches: list[torch.Tensor], precision: str, repeats: int) -> dict[str, object]:
    """fp32 against `precision` on `batches`: code agreement, PSNRs, and median encode / decode times per batch
    (None with `repeats` 0: values only)."""
    batches = [b.to(tok.device) for b in batches]
    tok.set_precision("fp32")
    ref_codes = [tok.encode(b) for b in batches]

    def run(mode: str) -> tuple[list, list, float, float]:
        """mode: fp32, decode (the fp32 codes decoded under p) or both (encode and decode under p)."""
        tok.set_precision("fp32" if mode == "fp32" else precision, encode=mode == "both")
        codes, images, enc, dec = [], [], 0.0, 0.0
        for b, ref in zip(batches, ref_codes):
            c, t = timed(tok.encode, b)
            enc += t
            x, t = timed(tok.decode, ref if mode == "decode" else c)
            dec += t
            codes.append(c)
            images.append(x)
        return codes, images, enc, dec

    modes = ("fp32", "decode", "both")
    out = {mode: run(mode) for mode in modes}  # the values (and a warm-up of every mode)
    times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for _ in range(repeats):  # interleaved rounds
        for mode in modes:
            times[mode].append(run(mode)[2:])
    tok.set_precision("fp32")
    both_codes = out["both"][0]
    same = [float((a.indices == b.indices).double().mean()) for a, b in zip(ref_codes, both_codes)] \
        if hasattr(ref_codes[0], "indices") else [float("nan")]  # continuous models: latents, no codes
    per_batch = (lambda i, mode: 1e3 * statistics.median(t[i] for t in times[mode]) / len(batches)) \
        if repeats else (lambda i, mode: None)
    return {
        "codes_equal": sum(same) / len(same),
        "decode_psnr_vs_fp32": mean_psnr(out["decode"][1], out["fp32"][1]),
        "psnr": {mode: mean_psnr(out[mode][1], batches) for mode in modes},
        "encode_ms": {mode: per_batch(0, mode) for mode in modes},
        "decode_ms": {mode: per_batch(1, mode) for mode in modes},
    }


def ratio_cell(ms: dict[str, float | None], mode: str) -> str:
    if ms["fp32"] is None:
        return "–"
    return f"{ms['fp32']:.3g} / {ms[mode]:.3g} ({ms['fp32'] / ms[mode]:.2f})"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_photo_options(p)
    p.add_argument("--images", type=int, default=16, help="how many photos (default 16)")
    p.add_argument("--models", default="default")
    p.add_argument("--precisions", default="bf16,fp16")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds after the first (0: no timing)")
    args = p.parse_args(argv)
    if args.repeats < 0:
        p.error("--repeats must be 0 (values only, no timing) or more")
    tmp = tempfile.TemporaryDirectory()
    folder = photo_data(args, Path(tmp.name))
    files = list_image_files([folder])[:args.images]
    print(f"{len(files)} photos from {folder}; batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{args.device}, median of {args.repeats}")
    print("| model | weights | precision | codes equal | decode vs fp32 dB | PSNR fp32 / decode / both dB | "
          "encode ms fp32 / p (x) | decode ms fp32 / p (x) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in [m for m in args.models.split(",") if m]:
        saved = Path(name).is_dir()  # a folder save_pretrained wrote: its own weights
        tok = (zoo.load(name) if saved else build(name, "cpu")).eval().to(args.device)
        weights = "saved" if saved else "trained" if name == "default" else "random"
        size = tok.spec.image_size
        batches = [load_images(files[i:i + args.batch_size], size=size)
                   for i in range(0, len(files), args.batch_size)]
        for precision in [q for q in args.precisions.split(",") if q]:
            r = compare(tok, batches, precision, args.repeats)
            ps = r["psnr"]
            print(f"| {name} | {weights} | {precision} | "
                  f"{100 * r['codes_equal']:.2f} % | {r['decode_psnr_vs_fp32']:.1f} | "
                  f"{ps['fp32']:.2f} / {ps['decode']:.2f} / {ps['both']:.2f} | "
                  f"{ratio_cell(r['encode_ms'], 'both')} | {ratio_cell(r['decode_ms'], 'decode')} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
