"""Encode/decode throughput and peak memory per model, batch size, precision and compile mode.

Each configuration runs in its own subprocess so its peak memory (CUDA: max allocated; CPU: peak RSS growth over
the process after model construction) is its own. Weights are random: speed does not depend on them.
Ratios (bf16 / fp16 vs fp32, compiled vs eager) are measured side by side in one run.

    python benchmarks/encode_decode.py --models onedpiece-s-256,onedpiece-b-256,onedpiece-l-256 --batch-sizes 1,4
    python benchmarks/encode_decode.py --models titok-l32 --dtypes fp32,bf16 --compile both --device cuda
    python benchmarks/encode_decode.py --models onedpiece-s-256 --tokens 32,128,256   # cost against token count
    python benchmarks/encode_decode.py --models unitok --batch-sizes 1 --dtypes fp32,bf16   # UniTok-L (820 M)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(name: str, batch: int, dtype: str, compiled: bool, device: str, tokens: int | None, repeats: int) -> dict:
    import torch

    import zoo

    torch.manual_seed(0)
    entry = zoo.get_entry(name)
    tok = zoo.build(entry.family, dict(entry.config)).eval().to(device)
    tok.name = name
    size = tok.spec.image_size
    images = torch.rand(batch, 3, size, size, device=device)
    if dtype != "fp32":
        tok.set_precision(dtype, encode=True)  # encode and decode under autocast (Tokenizer.set_precision)
    encode, decode = tok.encode, tok.decode
    if compiled:
        tok.compile()  # every hot submodule, in place (Tokenizer.compile)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        codes = encode(images, num_tokens=tokens)  # warm-up (and compilation)
        decode(codes)
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            codes = encode(images, num_tokens=tokens)
        sync()
        t1 = time.perf_counter()
        for _ in range(repeats):
            decode(codes)
        sync()
        t2 = time.perf_counter()
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)
    return {"model": name, "batch": batch, "dtype": dtype, "compile": compiled, "device": device,
            "tokens": tokens or tok.spec.max_tokens, "params_M": sum(p.numel() for p in tok.parameters()) / 1e6,
            "encode_img_s": batch * repeats / (t1 - t0), "decode_img_s": batch * repeats / (t2 - t1),
            "peak_MiB": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="onedpiece-s-256,onedpiece-b-256,onedpiece-l-256")
    p.add_argument("--batch-sizes", default="1,4")
    p.add_argument("--dtypes", default="fp32", help="fp32,bf16,fp16 (autocast of encode and decode)")
    p.add_argument("--compile", default="no", choices=["no", "yes", "both"])
    p.add_argument("--tokens", default="", help="token budgets for variable-length models, e.g. 32,128,256")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--_one", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args._one:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        spec = json.loads(args._one)
        print(json.dumps(measure(**spec, device=args.device, repeats=args.repeats)))
        return

    compiles = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
    budgets = [int(t) for t in args.tokens.split(",") if t] or [None]
    rows = []
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            for dtype in args.dtypes.split(","):
                for compiled in compiles:
                    for tokens in budgets:
                        spec = dict(name=name, batch=batch, dtype=dtype, compiled=compiled, tokens=tokens)
                        cmd = [sys.executable, __file__, "--_one", json.dumps(spec), "--device", args.device,
                               "--repeats", str(args.repeats), "--threads", str(args.threads)]
                        out = subprocess.run(cmd, capture_output=True, text=True)
                        if out.returncode != 0:
                            print(f"{spec}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                            continue
                        row = json.loads(out.stdout.strip().splitlines()[-1])
                        rows.append(row)
                        print(f"{row['model']:<18} b={row['batch']:<3} {row['dtype']:<5} "
                              f"{'compiled' if row['compile'] else 'eager':<8} tokens={row['tokens']:<4} "
                              f"{row['params_M']:7.1f}M  encode {row['encode_img_s']:8.2f} img/s  "
                              f"decode {row['decode_img_s']:8.2f} img/s  peak {row['peak_MiB']:8.0f} MiB", flush=True)
    base = {(r["model"], r["batch"], r["tokens"]): r for r in rows if r["dtype"] == "fp32" and not r["compile"]}
    for r in rows:
        b = base.get((r["model"], r["batch"], r["tokens"]))
        if b and b is not r:
            print(f"ratio {r['model']} b={r['batch']} {r['dtype']} {'compiled' if r['compile'] else 'eager'} vs "
                  f"fp32 eager: encode x{r['encode_img_s'] / b['encode_img_s']:.2f}, "
                  f"decode x{r['decode_img_s'] / b['decode_img_s']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
