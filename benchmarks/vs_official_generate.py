"""Generator sampling against the official samplers, side by side in one process, with parity checked first.

    python benchmarks/vs_official_generate.py --family maskgit --official ~/src/1d-tokenizer --model maskgit-titok-l32
    python benchmarks/vs_official_generate.py --family var --official ~/src/VAR --model var-d16 --batch-sizes 1,4

The official repository is a checkout YOU fetched (never shipped with the zoo; nothing is copied from it): the
script puts it on ``sys.path`` and builds the official generator of a released config with its own seeded random
initialisation (maskgit: 1d-tokenizer's ``modeling/maskgit.py`` ImageBert / UViTBert as its
``configs/infer/TiTok/titok_*.yaml`` configures it; var: VAR's ``models/var.py`` VAR and its VQVAE as
``build_vae_var`` builds them). The zoo side is that state dict converted by the zoo (`zoo.generate.from_official`;
VAR's VQVAE by `zoo.from_official("var-vqvae", ...)`, attached to the generator for the next-scale inputs).

Both sides sample with the published settings the zoo's registry records for the generator (steps, guidance,
temperature, schedule; VAR: cfg, top-k, top-p). Parity first: the same class labels and seed must give identical
token indices (official: ``torch.manual_seed(seed)`` then ``ImageBert.generate`` (global RNG); VAR:
``autoregressive_infer_cfg(g_seed=seed)``; zoo: ``gen.sample(labels, seed=seed)``). Then sampling is timed,
interleaved (zoo, official, official, zoo, ...), codes only: the official VAR sampler ends with the VQVAE's
decode (``fhat_to_img``), which is replaced by the identity here (and the official indices are recorded by
wrapping ``models.var.sample_with_top_k_top_p_``, in this process only). Every timed round also re-checks that
both sides chose the same codes. Each figure is the median over ``--repeats`` rounds of wall time and of process
CPU time; the ratios are official / zoo time, i.e. throughput zoo / official (> 1: the zoo is faster).

``--depth N`` builds a shallower generator than the released one (same width and heads), for slow machines; the
output says so. Needs, besides torch: omegaconf, einops, transformers (1d-tokenizer) or huggingface_hub (VAR).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

import zoo
from zoo.generate import get_generator_entry


@dataclass
class Sides:
    """Both samplers: ``labels [B] int64, seed -> indices [B, T]`` (int64, CPU)."""

    zoo: Callable[[Tensor, int], Tensor]
    official: Callable[[Tensor, int], Tensor]
    what: str  # the built config, for the output
    generator: Any = None  # the zoo's generator (for --compile)


# ---------------------------------------------------------------------------------------------------------------
# MaskGIT (bytedance/1d-tokenizer)
# ---------------------------------------------------------------------------------------------------------------
def _maskgit(official: Path, name: str, seed: int, depth: int | None) -> Sides:
    from omegaconf import OmegaConf

    from modeling.maskgit import ImageBert, UViTBert
    from zoo.generate import from_official

    entry = get_generator_entry(name)
    if not name.startswith("maskgit-titok-"):
        raise SystemExit(f"--family maskgit builds TiTok's generators from 1d-tokenizer (maskgit-titok-*), not {name}")
    yaml = official / "configs" / "infer" / "TiTok" / f"titok_{name.split('-')[-1]}.yaml"
    cfg = OmegaConf.load(yaml)
    if depth:
        cfg.model.generator.num_hidden_layers = depth
    g = cfg.model.generator
    torch.manual_seed(seed)
    model = (UViTBert if g.model_type == "UViT" else ImageBert)(cfg).eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    gen = from_official(state, config=OmegaConf.to_container(cfg, resolve=True), family="maskgit",
                        sampling=dict(entry.sampling)).eval()
    s = entry.sampling

    def zoo_side(labels: Tensor, seed: int) -> Tensor:
        return gen.sample(labels, seed=seed).indices[..., 0]

    def official_side(labels: Tensor, seed: int) -> Tensor:
        torch.manual_seed(seed)  # the official sampler draws from the global generator
        with torch.no_grad():
            return model.generate(labels.clone(), guidance_scale=s["guidance"], guidance_decay=s["guidance_decay"],
                                  guidance_scale_pow=s["guidance_pow"], randomize_temperature=s["temperature"],
                                  softmax_temperature_annealing=s["softmax_annealing"], num_sample_steps=s["num_steps"])

    what = (f"{yaml.relative_to(official)}: {g.model_type} width {g.hidden_size}, depth {g.num_hidden_layers}, "
            f"{g.image_seq_len} tokens; sampling {dict(s)}")
    return Sides(zoo_side, official_side, what, gen)


# ---------------------------------------------------------------------------------------------------------------
# VAR (FoundationVision/VAR)
# ---------------------------------------------------------------------------------------------------------------
_NO_RESET = (nn.Linear, nn.LayerNorm, nn.BatchNorm2d, nn.SyncBatchNorm, nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d,
             nn.ConvTranspose2d)


def _var(official: Path, name: str, seed: int, depth: int | None) -> Sides:
    import models.var as official_var
    from models import build_vae_var
    from zoo.generate import from_official

    entry = get_generator_entry(name)
    if entry.family != "var" or entry.tokenizer != "var-vqvae":
        raise SystemExit(f"--family var builds FoundationVision/VAR's generators (var-d16 ... var-d30), not {name}")
    c = entry.config
    patch_nums = tuple(c["scales"])
    # build_vae_var turns reset_parameters into a no-op for these classes (for speed); put them back afterwards
    saved = {cls: cls.__dict__.get("reset_parameters") for cls in _NO_RESET}
    torch.manual_seed(seed)
    try:
        # (with --depth, the VAR built here is only a small throw-away: the one used is rebuilt below)
        vae, var = build_vae_var(device="cpu", patch_nums=patch_nums, V=c["vocab"], Cvae=c["code_dim"],
                                 depth=2 if depth else c["depth"], flash_if_available=False, fused_if_available=False)
    finally:
        for cls, fn in saved.items():
            if fn is None:
                delattr(cls, "reset_parameters")
            else:
                cls.reset_parameters = fn
    if depth:  # a shallower VAR of the same width and heads (init_weights scales by the depth: rebuild it)
        from models.var import VAR

        torch.manual_seed(seed)
        var = VAR(vae, num_classes=c["num_classes"], depth=depth, embed_dim=c["width"], num_heads=c["heads"],
                  norm_eps=1e-6, attn_l2_norm=True, patch_nums=patch_nums, flash_if_available=False,
                  fused_if_available=False)
        var.init_weights(init_adaln=0.5, init_adaln_gamma=1e-5, init_head=0.02, init_std=-1)
    # build_vae_var leaves the VQVAE's convs uninitialised (the release loads weights): give them torch's default
    for m in vae.modules():
        if isinstance(m, (nn.Conv2d, nn.Embedding)):
            m.reset_parameters()
    vae.eval(), var.eval()

    tok = zoo.from_official("var-vqvae", {k: v.detach().clone() for k, v in vae.state_dict().items()},
                            {"v_patch_nums": list(patch_nums)}).eval()
    gen = from_official({k: v.detach().clone() for k, v in var.state_dict().items()}, config={"pn": list(patch_nums)},
                        family="var", sampling=dict(entry.sampling), groups=1).eval()
    gen.attach(tok)
    s = entry.sampling

    # record the official indices (they are not returned) and skip the final decode (codes only)
    recorded: list[Tensor] = []
    sample_fn = official_var.sample_with_top_k_top_p_

    def recording(*a: Any, **kw: Any) -> Tensor:
        out = sample_fn(*a, **kw)
        recorded.append(out[:, :, 0])
        return out

    official_var.sample_with_top_k_top_p_ = recording
    vae.fhat_to_img = lambda f_hat: f_hat

    def zoo_side(labels: Tensor, seed: int) -> Tensor:
        return gen.sample(labels, seed=seed).indices[..., 0]

    def official_side(labels: Tensor, seed: int) -> Tensor:
        recorded.clear()
        with torch.no_grad():
            var.autoregressive_infer_cfg(labels.shape[0], labels.clone(), g_seed=seed, cfg=s["guidance"],
                                         top_k=s["top_k"], top_p=s["top_p"], more_smooth=False)
        return torch.cat(recorded, dim=1)

    d = depth or c["depth"]
    what = (f"models/var.py VAR width {c['width']}, depth {d}, {c['heads']} heads, scales {list(patch_nums)} "
            f"({sum(p * p for p in patch_nums)} tokens), VQVAE ch160; sampling {dict(s)}")
    return Sides(zoo_side, official_side, what, gen)


BUILDERS: dict[str, tuple[Callable[..., Sides], str]] = {
    "maskgit": (_maskgit, "maskgit-titok-l32"),
    "var": (_var, "var-d16"),
}


# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------
def labels_for(batch: int, seed: int) -> Tensor:
    return torch.randint(0, 1000, (batch,), generator=torch.Generator().manual_seed(1000 + seed))


def parity(sides: Sides, batch: int, seed: int) -> dict:
    labels = labels_for(batch, seed)
    a, b = sides.zoo(labels, seed), sides.official(labels, seed).cpu()
    return {"batch": batch, "seed": seed, "identical": bool(torch.equal(a, b)),
            "agreement": float((a == b).float().mean()) if a.shape == b.shape else 0.0,
            "tokens": int(a.numel())}


def timed(fn: Callable[[], Tensor]) -> tuple[float, float, Tensor]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def interleaved(sides: Sides, batch: int, repeats: int, seed: int) -> dict:
    """Median seconds (wall, CPU) of one sampling call per side, alternating ABBA per round; each round uses a
    new seed and checks that both chose the same codes."""
    labels = labels_for(batch, seed)
    sides.zoo(labels, seed), sides.official(labels, seed)  # warm-up
    samples: dict[str, list] = {"zoo": [], "official": []}
    same = True
    for r in range(repeats):
        out = {}
        for side in (("zoo", "official") if r % 2 == 0 else ("official", "zoo")):
            w, c, idx = timed(lambda: getattr(sides, side)(labels, seed + r))
            samples[side].append((w, c))
            out[side] = idx.cpu()
        same &= bool(torch.equal(out["zoo"], out["official"]))
    med = {s: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for s, v in samples.items()}
    return {**med, "identical_every_round": same}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", required=True, choices=sorted(BUILDERS))
    p.add_argument("--official", required=True, type=Path, help="your checkout of the official repository")
    p.add_argument("--model", help="registered generator (default: maskgit-titok-l32 / var-d16)")
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (0: parity only)")
    p.add_argument("--parity-batches", default="1,3", help="batch sizes of the parity checks (seeds 0, 1, ...)")
    p.add_argument("--depth", type=int, help="a shallower generator than released (slow machines; printed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="time the zoo's generator compiled (Generator.compile(); "
                                                          "the parity checks then run compiled too)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    args.model = args.model or BUILDERS[args.family][1]
    args.official = args.official.expanduser().resolve()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.official))

    sides = BUILDERS[args.family][0](args.official, args.model, args.seed, args.depth)
    if args.compile:
        sides.generator.compile()
    print(f"{args.model} vs official ({args.official.name}): {sides.what}"
          f"{'; zoo compiled' if args.compile else ''}", flush=True)
    if args.depth:
        print(f"NOTE: depth {args.depth} instead of the released depth (--depth): a smaller config than released",
              flush=True)
    checks = [parity(sides, int(b), args.seed + i) for i, b in enumerate(args.parity_batches.split(","))]
    for chk in checks:
        print(f"parity: {chk}", flush=True)
    results: dict[str, Any] = {"model": args.model, "family": args.family, "depth": args.depth,
                               "compile": args.compile,
                               "threads": args.threads, "built": sides.what, "parity": checks, "batches": {}}
    if not all(chk["identical"] for chk in checks):
        print("warning: the sampled indices differ (see the agreement)", file=sys.stderr)
    if args.repeats > 0:
        print(f"{'batch':>5} {'zoo s':>8} {'official s':>11} {'wall ratio':>10} {'cpu ratio':>9}  same codes")
    for batch in (int(b) for b in args.batch_sizes.split(",") if args.repeats > 0):
        t = interleaved(sides, batch, args.repeats, args.seed + 10)
        results["batches"][batch] = t
        (zw, zc), (ow, oc) = t["zoo"], t["official"]
        print(f"{batch:>5} {zw:8.3f} {ow:11.3f} {ow / zw:10.2f} {oc / zc:9.2f}  {t['identical_every_round']}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
