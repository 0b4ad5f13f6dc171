"""Speed against the official code, side by side in one process, with parity checked first.

    python benchmarks/vs_official.py --family onedpiece --official ~/src/One-D-Piece
    python benchmarks/vs_official.py --family titok --official ~/src/1d-tokenizer --model titok-s128
    python benchmarks/vs_official.py --family maskgit-vqgan --official ~/src/1d-tokenizer --batch-sizes 1,8

The official repository is a checkout YOU fetched (it is never shipped with the zoo, and this script copies
nothing from it): the script puts it on ``sys.path``, builds the official model of a released config with its
own random initialisation (seeded), converts that state dict with the zoo's converter (`zoo.from_official`),
checks parity on random images (indices equal, images within 1e-4), then times encode, decode and
encode+decode of both, interleaved (zoo, official, official, zoo, ...) so that the load of a shared machine
hits both alike. Each figure is the median over `--repeats` rounds of wall time and of process CPU time; the
table prints throughput ratios zoo / official (> 1: the zoo is faster). With `--memory`, the peak resident
memory of one batch is measured for each side in its own subprocess (the highest resident memory sampled while the
batch runs, minus the memory of the built model).

The official repositories need what their requirements name (omegaconf for TiTok / One-D-Piece; install it in
a scratch environment, e.g. ``python -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install
omegaconf``; UniTok: typed-argument-parser, pytz, timm). Families: titok and maskgit-vqgan (bytedance/1d-tokenizer),
onedpiece (turingmotors/One-D-Piece), unitok (FoundationVision/UniTok). Not (yet) here: ImageFolder (its official
build needs edits: timm sizes, stubs for peft/webdataset, a process group) and ALIT (its official code calls
``.to(x.get_device())``, which fails on a CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

import zoo


# ---------------------------------------------------------------------------------------------------------------
# Official models (built from the user's checkout) and how to call them
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Official:
    """An official model plus the calls that match the zoo's `encode` / `decode` on images in [0, 1]."""

    model: nn.Module
    encode: Callable[[Tensor], Tensor]  # images [B, 3, H, W] in [0, 1] -> indices, the zoo's [B, T, G] layout
    decode: Callable[[Tensor], Tensor]  # indices [B, T, G] -> raw images [B, 3, H, W]
    config: Any  # what zoo.from_official takes as the official config
    overrides: dict
    image_size: int


def _titok(official: Path, name: str, family: str) -> Official:
    from omegaconf import OmegaConf

    if family == "onedpiece":
        from modeling.one_d_piece import OneDPiece as cls
        yaml = official / "configs" / f"one-d-piece_{name.split('-')[1]}256.yaml"
    else:
        from modeling.titok import TiTok as cls
        yaml = official / "configs" / "infer" / "TiTok" / f"titok_{name.split('-', 1)[1].replace('-', '_')}.yaml"
    cfg = OmegaConf.load(yaml)
    model = cls(cfg).eval()

    def encode(x: Tensor) -> Tensor:
        return model.encode(x)[1]["min_encoding_indices"].reshape(x.shape[0], -1, 1)

    def decode(idx: Tensor) -> Tensor:
        return model.decode_tokens(idx[..., 0][:, None])

    return Official(model, encode, decode, str(yaml), {}, int(cfg.dataset.preprocessing.crop_size))


def _maskgit_vqgan(official: Path, name: str, family: str) -> Official:
    from omegaconf import OmegaConf
    from modeling.titok import PretrainedTokenizer

    from modeling.modules.maskgit_vqgan import Decoder, Encoder, VectorQuantizer

    conf = OmegaConf.create({"channel_mult": [1, 1, 2, 2, 4], "num_resolutions": 5, "dropout": 0.0,
                             "hidden_channels": 128, "num_channels": 3, "num_res_blocks": 2, "resolution": 256,
                             "z_channels": 256})
    # The official constructor reads the released file; build the same modules without that read.
    model = PretrainedTokenizer.__new__(PretrainedTokenizer)
    nn.Module.__init__(model)
    model.encoder, model.decoder = Encoder(conf), Decoder(conf)
    model.quantize = VectorQuantizer(num_embeddings=1024, embedding_dim=256, commitment_cost=0.25)
    model.eval()

    def encode(x: Tensor) -> Tensor:
        return model.encode(x).reshape(x.shape[0], -1, 1)

    def decode(idx: Tensor) -> Tensor:  # the official decode clamps; compare against the clamped zoo output
        return model.decode(idx[..., 0])

    return Official(model, encode, decode, None, {}, 256)


def _unitok(official: Path, name: str, family: str) -> Official:
    from models.unitok import UniTok
    from utils.config import Args

    args = Args()
    args.model = "vitamin_large"  # the released UniTok (Args' defaults)
    model = UniTok(args).eval()

    def encode(x: Tensor) -> Tensor:  # official [B, G, L] -> ours [B, L, G]
        return model.img_to_idx(x * 2 - 1).transpose(1, 2)

    def decode(idx: Tensor) -> Tensor:  # the official decode clamps
        return (model.idx_to_img(idx.transpose(1, 2)) + 1) / 2

    config = json.loads(json.dumps(args.state_dict(), default=str))
    return Official(model, encode, decode, config, {}, int(args.img_size))


BUILDERS: dict[str, tuple[Callable[[Path, str, str], Official], str, str]] = {
    # family: (builder, zoo family, default model)
    "titok": (_titok, "titok", "titok-s128"),
    "onedpiece": (_titok, "onedpiece", "onedpiece-s-256"),
    "maskgit-vqgan": (_maskgit_vqgan, "vqgan", "maskgit-vqgan"),
    "unitok": (_unitok, "unitok", "unitok"),
}
CLAMPED_OFFICIAL = {"maskgit-vqgan", "unitok"}  # official decodes clamp to [0, 1]


def build_official(family: str, official: Path, name: str, seed: int) -> Official:
    sys.path.insert(0, str(official))
    torch.manual_seed(seed)
    return BUILDERS[family][0](official, name, family)


def build_zoo(family: str, name: str, state_dict: dict, off: Official, compile: bool, channels_last: bool):
    zoo_family = BUILDERS[family][1]
    if off.config is None:
        tok = zoo.load(name, checkpoint=_save(state_dict))
    else:
        tok = zoo.from_official(zoo_family, state_dict, off.config, **off.overrides)
    tok = tok.eval()
    if channels_last:
        tok.to_channels_last()
    if compile:
        tok.compile()
    return tok


def _save(state_dict: dict) -> str:
    from safetensors.torch import save_file

    path = os.path.join(tempfile.mkdtemp(prefix="vs_official_"), "official.safetensors")
    save_file({k: v.contiguous() for k, v in state_dict.items()}, path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------
def parity(tok, off: Official, images: Tensor, clamp: bool) -> dict:
    with torch.no_grad():
        ours = tok.encode(images)
        theirs = off.encode(images)
        same = bool(torch.equal(ours.indices.cpu(), theirs.cpu()))
        a = tok.decode(ours, clamp=clamp)
        b = off.decode(theirs)
    return {"indices_equal": same, "index_agreement": float((ours.indices.cpu() == theirs.cpu()).float().mean()),
            "max_abs_image_diff": float((a - b).abs().max())}


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def interleaved(tok, off: Official, images: Tensor, repeats: int, clamp: bool) -> dict:
    """Median seconds (wall, CPU) of encode / decode / encode+decode for both, alternating ABBA per round."""
    with torch.no_grad():
        codes, idx = tok.encode(images), off.encode(images)
        calls = {
            "zoo": {"encode": lambda: tok.encode(images), "decode": lambda: tok.decode(codes, clamp=clamp),
                    "encode+decode": lambda: tok.decode(tok.encode(images), clamp=clamp)},
            "official": {"encode": lambda: off.encode(images), "decode": lambda: off.decode(idx),
                         "encode+decode": lambda: off.decode(off.encode(images))},
        }
        for side in calls.values():  # warm-up (and compilation)
            for fn in side.values():
                fn()
        samples = {s: {k: [] for k in calls[s]} for s in calls}
        for r in range(repeats):
            order = ("zoo", "official") if r % 2 == 0 else ("official", "zoo")
            for op in ("encode", "decode", "encode+decode"):
                for side in order:
                    samples[side][op].append(timed(calls[side][op]))
    return {s: {op: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v))
                for op, v in ops.items()} for s, ops in samples.items()}


def peak_memory(args: argparse.Namespace, side: str, batch: int, state_file: str) -> float:
    """MiB of RSS growth while one batch is encoded and decoded, measured in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--family", args.family, "--official", str(args.official), "--model",
           args.model, "--threads", str(args.threads), "--seed", str(args.seed),
           "--_memory", json.dumps({"side": side, "batch": batch, "state": state_file})]
    if args.compile:
        cmd.append("--compile")
    if args.channels_last:
        cmd.append("--channels-last")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"memory subprocess ({side}) failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def memory_child(args: argparse.Namespace, spec: dict) -> None:
    from safetensors.torch import load_file

    off = build_official(args.family, args.official, args.model, args.seed)
    state = load_file(spec["state"])
    images = torch.rand(spec["batch"], 3, off.image_size, off.image_size, generator=torch.Generator().manual_seed(1))
    if spec["side"] == "zoo":
        tok = build_zoo(args.family, args.model, state, off, args.compile, args.channels_last)
        del off
        tok.fingerprint  # computed once per model (then cached): not part of a batch's memory
        run = lambda: tok.decode(tok.encode(images), clamp=args.family in CLAMPED_OFFICIAL)  # noqa: E731
    else:
        off.model.load_state_dict(state)
        run = lambda: off.decode(off.encode(images))  # noqa: E731
    import gc

    gc.collect()
    print(peak_rss_growth(run))


def _rss_mib() -> float:
    """Current resident memory of this process (Linux /proc; else the peak so far, from getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_growth(run: Callable[[], Any], every: float = 0.002) -> float:
    """MiB: the highest resident memory seen while `run()` runs (sampled by a thread) minus the memory before.
    (The process's peak RSS cannot be used: building the models already set it higher than one batch needs.)"""
    import threading

    before, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(every)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        with torch.no_grad():
            run()
    finally:
        done.set()
        watcher.join()
    return max(peak[0], _rss_mib()) - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", required=True, choices=sorted(BUILDERS))
    p.add_argument("--official", required=True, type=Path, help="your checkout of the official repository")
    p.add_argument("--model", help="released config to build (default: the family's smallest)")
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (0: parity and --memory only)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="time the zoo model compiled (Tokenizer.compile())")
    p.add_argument("--channels-last", action="store_true", help="time the zoo model channels-last")
    p.add_argument("--memory", action="store_true", help="also measure peak memory per side (subprocesses)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--_memory", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.model = args.model or BUILDERS[args.family][2]
    args.official = args.official.expanduser().resolve()
    torch.set_num_threads(args.threads)
    if args._memory:
        return memory_child(args, json.loads(args._memory))

    off = build_official(args.family, args.official, args.model, args.seed)
    state = {k: v.detach().clone() for k, v in off.model.state_dict().items()}
    tok = build_zoo(args.family, args.model, state, off, args.compile, args.channels_last)
    clamp = args.family in CLAMPED_OFFICIAL
    gen = torch.Generator().manual_seed(args.seed + 1)
    size = off.image_size
    check = parity(tok, off, torch.rand(2, 3, size, size, generator=gen), clamp)
    print(f"{args.model}: parity {check}", flush=True)
    if not check["indices_equal"] or check["max_abs_image_diff"] > 1e-4:
        print("warning: parity not exact (near ties in a random-weight model, or a real difference)", file=sys.stderr)
    results: dict[str, Any] = {"model": args.model, "family": args.family, "threads": args.threads,
                               "compile": args.compile, "channels_last": args.channels_last, "parity": check,
                               "batches": {}}
    print(f"{'batch':>5} {'op':<14} {'zoo s':>8} {'official s':>11} {'wall ratio':>10} {'cpu ratio':>9}")
    for batch in (int(b) for b in args.batch_sizes.split(",") if args.repeats > 0):
        images = torch.rand(batch, 3, size, size, generator=gen)
        t = interleaved(tok, off, images, args.repeats, clamp)
        results["batches"][batch] = t
        for op in ("encode", "decode", "encode+decode"):
            (zw, zc), (ow, oc) = t["zoo"][op], t["official"][op]
            print(f"{batch:>5} {op:<14} {zw:8.3f} {ow:11.3f} {ow / zw:10.2f} {oc / zc:9.2f}", flush=True)
    if args.memory:
        state_file = _save(state)
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            mem = {side: peak_memory(args, side, batch, state_file) for side in ("zoo", "official")}
            results.setdefault("peak_MiB", {})[batch] = mem
            print(f"peak memory b={batch}: zoo {mem['zoo']:.0f} MiB, official {mem['official']:.0f} MiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
