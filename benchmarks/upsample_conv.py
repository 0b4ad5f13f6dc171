"""The sub-pixel upsampling conv (zoo/nn/upsample_conv.py) against the two-step form it replaced, in real decoders.

    python benchmarks/upsample_conv.py --models titok-s128,unitok --batch-sizes 1,8
    python benchmarks/upsample_conv.py --models maskgit-vqgan --channels-last --float64

For each model (random weights): every `UpsampleConv2d` layer alone on the input it gets in a real decode, then the
whole `decode`, each timed with the sub-pixel form and with ``conv3x3(interpolate(x, 2, "nearest"))``, interleaved
(A B B A ...), median of `--repeats`. `--float64` also decodes once in float64 (two-step form) and prints how far
each float32 form is from it.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import zoo
from zoo.nn.upsample_conv import UpsampleConv2d

SUBPIXEL = UpsampleConv2d.forward


def two_step(self: UpsampleConv2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), self.weight, self.bias, padding=1)


def interleaved(run, repeats: int) -> tuple[float, float]:
    """Median seconds of `run()` with the two-step form and with the sub-pixel form, alternating their order."""
    times: dict[str, list[float]] = {"two-step": [], "sub-pixel": []}
    for i in range(repeats):
        for form in (("two-step", "sub-pixel") if i % 2 == 0 else ("sub-pixel", "two-step")):
            UpsampleConv2d.forward = two_step if form == "two-step" else SUBPIXEL
            t = time.perf_counter()
            run()
            times[form].append(time.perf_counter() - t)
    UpsampleConv2d.forward = SUBPIXEL
    return statistics.median(times["two-step"]), statistics.median(times["sub-pixel"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="titok-s128")
    p.add_argument("--batch-sizes", default="1")
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--float64", action="store_true", help="also print each form's distance to a float64 decode")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models.split(","):
        torch.manual_seed(0)
        entry = zoo.get_entry(name)
        tok = zoo.build(entry.family, dict(entry.config)).eval()
        if args.channels_last:
            tok.to_channels_last()
        layers = [m for m in tok.modules() if isinstance(m, UpsampleConv2d)]
        if not layers:
            print(f"{name}: no upsampling conv")
            continue
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            size = tok.spec.image_size
            with torch.no_grad():
                codes = tok.encode(torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)))
                inputs = {}
                hooks = [m.register_forward_hook(lambda mod, i, o: inputs.__setitem__(mod, i[0])) for m in layers]
                tok.decode(codes)
                for h in hooks:
                    h.remove()
                print(f"{name} batch {batch} ({'channels-last' if args.channels_last else 'NCHW'}, "
                      f"{args.threads} threads): ms, two-step / sub-pixel")
                for m in layers:
                    x = inputs[m]
                    old, new = interleaved(lambda: m(x), args.repeats)
                    print(f"  layer {tuple(x.shape)} -> {m.out_channels} ch: {old * 1e3:8.1f} {new * 1e3:8.1f}  "
                          f"x{old / new:.2f}")
                old, new = interleaved(lambda: tok.decode(codes), args.repeats)
                print(f"  decode: {old:.3f} s {new:.3f} s  x{old / new:.2f}")
                if args.float64:
                    UpsampleConv2d.forward = two_step
                    reference = copy.deepcopy(tok).double().decode(codes, clamp=False).float()
                    a = tok.decode(codes, clamp=False)
                    UpsampleConv2d.forward = SUBPIXEL
                    b = tok.decode(codes, clamp=False)
                    print(f"  largest distance to float64: two-step {(a - reference).abs().max():.2e}, "
                          f"sub-pixel {(b - reference).abs().max():.2e} (output std {reference.std():.2f})")


if __name__ == "__main__":
    main()
