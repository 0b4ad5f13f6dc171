"""`zoo eval`: evaluate one or more tokenizers on a dataset and write a report folder.

Multi-process: ``torchrun --nproc_per_node N -m zoo.cli eval ...`` (CPU: ``ACCELERATE_USE_CPU=yes``) or
``accelerate launch -m zoo.cli eval ...``; each process reads its share of the images and the sums are reduced.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError

SUITES_DIR = Path(__file__).resolve().parents[2] / "eval" / "suites"


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="rFID, PSNR, SSIM, LPIPS, codebook usage, rate–distortion -> report/",
                       description="Evaluate tokenizers with the reference protocol (docs/eval.md).")
    p.add_argument("-m", "--model", required=True, help="NAME[,NAME...]: registered names or saved folders")
    p.add_argument("--data", nargs="+", help="folder(s), list.txt, shard-{000..009}.tar, hf:NAME[:SPLIT]")
    p.add_argument("--suite", help="a suite YAML (eval/suites/NAME.yaml or a path) giving defaults")
    p.add_argument("--metrics", help="comma list of rfid,psnr,ssim,lpips,usage (default: all)")
    p.add_argument("--tokens", help="token budgets, e.g. 32,64,128 (variable-length models): one row each")
    p.add_argument("-o", "--output", default="report", help="report folder")
    p.add_argument("--checkpoint", help="official checkpoint file (one registered name only)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--crop", choices=["auto", "center", "adm", "none"],
                   help="evaluation crop: auto (default: each model's official one; ImageFolder 'adm', others "
                        "'center'), center (torchvision Resize bicubic + CenterCrop on the PIL image), adm, none")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--on-error", choices=["skip", "fail"], help="corrupt images: skip and count (default) or fail")
    p.add_argument("--ref-stats", help="reference statistics .npz: read if present (checked), else written")
    p.add_argument("--inception-weights", help="path of weights-inception-2015-12-05-6726825d.pth")
    p.add_argument("--fid-extractor", help="'inception' (default) or package.module:factory")
    p.add_argument("--lpips-net", choices=["alex", "vgg"])
    p.add_argument("--lpips-weights", help="path of alexnet-owt-7be5be79.pth / vgg16-397923af.pth")
    p.add_argument("--baselines", help="codecs at the tokenizer's bytes for rate–distortion: jpeg,webp (highest "
                                       "quality at or below the bytes, plus PSNR interpolated at exactly them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)


def load_suite(name: str) -> dict[str, Any]:
    import yaml

    path = Path(name)
    if not path.is_file():
        path = SUITES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise InputError(f"no suite {name!r}; known: {', '.join(known)} (or give a YAML path)")
    data = yaml.safe_load(path.read_text()) or {}
    allowed = {"name", "description", "data", "metrics", "tokens", "crop", "batch_size", "limit", "baselines",
               "on_error", "ref_stats", "lpips_net"}
    bad = set(data) - allowed
    if bad:
        raise InputError(f"suite {path} has unknown keys {sorted(bad)}; allowed: {sorted(allowed)}")
    return data


def _split(text: Any) -> list[str]:
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        return [str(t) for t in text]
    return [t.strip() for t in str(text).split(",") if t.strip()]


def cmd_eval(args: argparse.Namespace) -> int:
    from ..cli import _device, _parse_tokens
    from ..loading import load
    from .report import write_report
    from .runner import ALL_METRICS, EvalConfig, Evaluator, dist_info

    suite = load_suite(args.suite) if args.suite else {}

    def pick(name: str, default: Any) -> Any:
        v = getattr(args, name)
        return v if v is not None else suite.get(name, default)

    data = args.data or _split(suite.get("data"))
    if not data:
        raise InputError("no data: pass --data PATH (or a --suite that names its data)")
    metrics = _split(pick("metrics", ",".join(ALL_METRICS)))
    tokens_text = pick("tokens", None)
    tokens = _parse_tokens(",".join(_split(tokens_text))) if tokens_text is not None else [None]
    _init_distributed()
    rank, world = dist_info()
    config = EvalConfig(
        metrics=tuple(metrics), batch_size=int(pick("batch_size", 16)), crop=pick("crop", "auto"),
        on_error=pick("on_error", "skip"), limit=pick("limit", None), ref_stats=pick("ref_stats", None),
        fid_extractor=args.fid_extractor, inception_weights=args.inception_weights,
        lpips_net=pick("lpips_net", "alex"), lpips_weights=args.lpips_weights, progress=not args.quiet)
    evaluator = Evaluator(data, config)
    names = _split(args.model)
    if args.checkpoint and len(names) > 1:
        raise InputError("--checkpoint goes with one model")
    results = []
    device = _device(args.device)
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    for name in names:
        model = load(name, checkpoint=args.checkpoint, device=device)
        for k in tokens:
            results.append(evaluator.run(model, num_tokens=k))
            _echo(results[-1], rank, args.quiet)
    codecs = _split(pick("baselines", None))
    for codec in codecs:
        for r in [r for r in results if r.get("family") != "codec"]:
            results.append(evaluator.run_codec(codec, r["image_size"], r["bits_per_image"] / 8, r.get("crop")))
            _echo(results[-1], rank, args.quiet)
    if rank == 0:
        meta = {"data": evaluator.spec.describe() if evaluator.spec.kind != "files" else " ".join(data),
                "suite": suite.get("name"), "processes": world, "command": "zoo eval " + " ".join(sys.argv[2:])}
        written = write_report(results, args.output, meta)
        print(f"wrote {written['md']} and {written['json']}")
    _finish_distributed()
    return 0


def _echo(r: dict, rank: int, quiet: bool) -> None:
    if rank or quiet:
        return
    parts = [f"{k}={r[k]:.4g}" for k in ("psnr", "ssim", "lpips", "rfid", "bits_per_image") if r.get(k) is not None]
    print(f"{r['model']} @ {r['num_tokens']}: " + " ".join(parts), file=sys.stderr)


def _init_distributed() -> None:
    """Under torchrun / accelerate launch (WORLD_SIZE > 1) start the process group through accelerate."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState()


def _finish_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.barrier()
        dist.destroy_process_group()
