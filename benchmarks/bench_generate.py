"""Sampling speed of the released generator sizes (random weights, no download), codes only (no decoding).

    python benchmarks/bench_generate.py --names maskgit-titok-l32,maskgit-titok-s128 --batch-size 4 --dtype fp32

Builds each registered generator at its released size with random weights, then times `sample` with the published
sampler settings (steps, guidance: two passes per step when guided). VAR needs its tokenizer to sample and is
skipped here.
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    import torch

    from zoo.generate import build_generator, get_generator_entry, list_generators

    p = argparse.ArgumentParser()
    p.add_argument("--names", default="maskgit-titok-l32")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    names = list_generators() if args.names == "all" else args.names.split(",")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    for name in names:
        e = get_generator_entry(name)
        if e.family != "maskgit":
            print(f"{name}: skipped (family {e.family} samples through its tokenizer)")
            continue
        torch.manual_seed(0)
        gen = build_generator(e.config, e.sampling, e.tokenizer).to(args.device, dtype).eval()
        labels = list(range(args.batch_size))
        gen.sample(labels[:1], seed=0, num_steps=1)  # warm-up
        times = []
        for r in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            gen.sample(labels, seed=r)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        best = min(times)
        print(json.dumps({"name": name, "params": sum(p.numel() for p in gen.parameters()), "device": args.device,
                          "dtype": args.dtype, "batch": args.batch_size, "steps": e.sampling["num_steps"],
                          "seconds": round(best, 3), "images_per_s": round(args.batch_size / best, 3)}))


if __name__ == "__main__":
    main()
