"""How much faster could any code that does the same arithmetic run on this machine? The roofline of a released config.

    python benchmarks/roofline.py --models imagefolder-4096,unitok --batch-sizes 1,8
    python benchmarks/roofline.py --models alit-small --batch-sizes 1 --json roofline.json
    python benchmarks/roofline.py --models unitok --batch-sizes 1 --top 8
    python benchmarks/roofline.py --models '' --generators maskgit-titok-l32,var-d16 --batch-sizes 1,8

For each model (random weights, eager, float32, `--threads` threads) and each call (encode, decode; a generator's
sampling):
1. the arithmetic: FLOPs of the matrix products and convolutions (`torch.utils.flop_counter.FlopCounterMode`) and of
   attention (counted here from each SDPA call's shapes, 4·B·H·Lq·Lk·d: FlopCounterMode does not count the CPU
   flash-attention kernel);
2. where the time goes: wall time (median of `--repeats` calls) split by torch.profiler's self CPU time into
   products, attention and the rest (normalisations, activations, residual adds, copies, Python); `--top N` also
   lists the N operators of most self CPU time, with their share and number of calls;
3. the machine's peak: the best GFLOP/s `torch.mm` reaches over a few large shapes, with the same threads,
   measured before each call (the highest of the run is used: a shared machine's speed drifts).

It prints two ceilings, each the most any implementation could gain over this eager run:
- **fusion ceiling** = wall / (product time + attention time): every element-wise pass fused away for free, the
  products and attention run by today's kernels (what `torch.compile` can at most do);
- **roofline ceiling** = wall / ((product FLOPs + attention FLOPs) / peak): in addition, every product and every
  attention kernel at the machine's peak rate, which no real kernel sustains on every shape.
The official code runs the same operators as the zoo's eager path (docs/speed.md, "Where the time goes"), so for a
family whose eager ratio to the official code is 1.0 these are also the ceilings over the official code.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import zoo

# operators whose self time is a matrix product or a convolution (the wrappers' own self time is negligible)
PRODUCT_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::mkldnn_convolution",
               "aten::_slow_conv2d_forward", "aten::slow_conv_dilated2d", "aten::mkldnn_linear",
               "aten::_mkl_linear", "aten::convolution", "aten::_convolution", "aten::conv2d", "aten::linear",
               "aten::matmul")
PEAK_SHAPES = ((1024, 1024, 1024), (2048, 2048, 2048), (512, 768, 3072), (4096, 768, 3072), (256, 1024, 4096))


class AttentionFlops(TorchDispatchMode):
    """Counts 2·B·H·Lq·Lk·(d_qk + d_v) FLOPs per scaled-dot-product-attention call (the two products)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "scaled_dot_product" in func.__name__ and len(args) >= 3:
            q, k, v = args[:3]
            batch_heads = q.numel() // (q.shape[-2] * q.shape[-1])
            self.flops += 2 * batch_heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return func(*args, **(kwargs or {}))


@dataclass
class Roofline:
    model: str
    batch: int
    call: str
    wall_s: float
    product_gflop: float
    attention_gflop: float
    product_share: float  # of the wall time
    attention_share: float
    rest_share: float
    product_gflops: float  # the rate the products reach in this call
    attention_gflops: float
    peak_gflops: float
    fusion_ceiling: float
    roofline_ceiling: float
    top_ops: list[tuple[str, float, int]] = field(default_factory=list)  # (operator, share of self time, calls)


def count_flops(fn: Callable[[], object]) -> tuple[float, float]:
    """(product FLOPs, attention FLOPs) of one call of `fn`."""
    counter, attention = FlopCounterMode(display=False), AttentionFlops()
    with torch.no_grad(), counter, attention:
        fn()
    counted = counter.get_flop_counts().get("Global", {})
    # any attention FlopCounterMode did count (non-CPU kernels) is in `attention` already
    sdpa = sum(v for k, v in counted.items() if "scaled_dot_product" in str(k))
    return float(counter.get_total_flops() - sdpa), float(attention.flops)


def time_shares(fn: Callable[[], object], top: int = 0) -> tuple[float, float, list[tuple[str, float, int]]]:
    """Shares of self CPU time (products, attention) in one profiled call of `fn`, and its `top` operators of most
    self time as (name, share, calls)."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS)
    attention = sum(e.self_cpu_time_total for e in events if "scaled_dot_product" in e.key)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return products / total, attention / total, [(e.key, e.self_cpu_time_total / total, e.count) for e in ranked]


def median_wall(fn: Callable[[], object], repeats: int) -> float:
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine_peak(repeats: int = 5) -> float:
    """The best GFLOP/s of float32 `torch.mm` over `PEAK_SHAPES` (this process's thread count)."""
    best = 0.0
    for m, k, n in PEAK_SHAPES:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        best = max(best, 2 * m * k * n / min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats)) / 1e9)
    return best


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def roofline(name: str, call: str, batch: int, fn: Callable[[], object], peak: float, repeats: int,
             top: int = 0) -> Roofline:
    with torch.no_grad():
        fn()  # warm-up (first-call allocations, cached kernels)
    product_flops, attention_flops = count_flops(fn)
    wall = median_wall(fn, repeats)
    product_share, attention_share, top_ops = time_shares(fn, top)
    product_s, attention_s = product_share * wall, attention_share * wall
    return Roofline(
        model=name, batch=batch, call=call, wall_s=wall,
        product_gflop=product_flops / 1e9, attention_gflop=attention_flops / 1e9,
        product_share=product_share, attention_share=attention_share,
        rest_share=1.0 - product_share - attention_share,
        product_gflops=product_flops / product_s / 1e9 if product_s else 0.0,
        attention_gflops=attention_flops / attention_s / 1e9 if attention_s else 0.0,
        peak_gflops=peak,
        fusion_ceiling=wall / max(product_s + attention_s, 1e-12),
        roofline_ceiling=wall / max((product_flops + attention_flops) / (peak * 1e9), 1e-12),
        top_ops=top_ops,
    )


def model_rooflines(name: str, batch: int, peak: Callable[[], float], repeats: int, top: int = 0) -> list[Roofline]:
    """peak(): the machine's peak GFLOP/s, asked right before each call is measured."""
    torch.manual_seed(0)
    entry = zoo.get_entry(name)
    tok = zoo.build(entry.family, dict(entry.config)).eval()
    size = tok.spec.image_size
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes = tok.encode(images)
    return [roofline(name, "encode", batch, lambda: tok.encode(images), peak(), repeats, top),
            roofline(name, "decode", batch, lambda: tok.decode(codes), peak(), repeats, top)]


def generator_rooflines(name: str, batch: int, peak: Callable[[], float], repeats: int,
                        top: int = 0) -> list[Roofline]:
    """One sampling call of a registered generator (random weights; codes only, no image decode)."""
    from zoo.generate import build_generator, get_generator_entry

    torch.manual_seed(0)
    entry = get_generator_entry(name)
    gen = build_generator(entry.config, entry.sampling, entry.tokenizer, family=entry.family).eval()
    if hasattr(gen, "attach"):  # next-scale generators build each scale's input with their tokenizer
        tok_entry = zoo.get_entry(entry.tokenizer)
        gen.attach(zoo.build(tok_entry.family, dict(tok_entry.config)).eval())
    labels = torch.arange(batch) * 7 % gen.num_classes
    return [roofline(name, "sample", batch, lambda: gen.sample(labels, seed=0), peak(), repeats, top)]


def render(rows: list[Roofline]) -> str:
    head = ("| model | batch | call | wall s | GFLOP products / attention | time: products / attention / rest | "
            "GFLOP/s products / attention / peak | fusion ceiling | roofline ceiling |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r.model} | {r.batch} | {r.call} | {r.wall_s:.3f} | {r.product_gflop:.1f} / "
                     f"{r.attention_gflop:.1f} | {r.product_share:.0%} / {r.attention_share:.0%} / {r.rest_share:.0%} "
                     f"| {r.product_gflops:.0f} / {r.attention_gflops:.0f} / {r.peak_gflops:.0f} | "
                     f"{r.fusion_ceiling:.2f}x | {r.roofline_ceiling:.2f}x |")
    return "\n".join(lines)


def render_top(rows: list[Roofline]) -> str:
    """One line per call: its top operators by self CPU time, as ``op share% (calls)``."""
    return "\n".join(f"{r.model} b{r.batch} {r.call}: " + ", ".join(
        f"{op.removeprefix('aten::')} {share:.0%} ({calls})" for op, share, calls in r.top_ops)
        for r in rows if r.top_ops)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="imagefolder-4096", help="tokenizers (comma-separated; '' for none)")
    p.add_argument("--generators", default="", help="generators, e.g. maskgit-titok-l32,var-d16 (their sampling)")
    p.add_argument("--batch-sizes", default="1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=0, help="also list each call's N operators of most self CPU time")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    # a shared machine's speed drifts: the peak is re-measured before each call and the highest seen is used, so
    # the ceilings stay upper bounds
    best = [0.0]

    def peak() -> float:
        best[0] = max(best[0], machine_peak())
        return best[0]

    print(f"peak float32 torch.mm: {peak():.0f} GFLOP/s with {args.threads} threads", flush=True)
    rows: list[Roofline] = []
    jobs = [(name, model_rooflines) for name in args.models.split(",") if name]
    jobs += [(name, generator_rooflines) for name in args.generators.split(",") if name]
    for name, measure in jobs:
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            new = measure(name, batch, peak, args.repeats, args.top)
            rows += new
            print("\n".join(render(new).splitlines()[2:]), flush=True)
    print(render(rows))
    if args.top:
        print(render_top(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
