"""`zoo eval`: evaluate one or more tokenizers on a dataset and write a report folder.

Multi-process: ``torchrun --nproc_per_node N -m zoo.cli eval ...`` (CPU: ``ACCELERATE_USE_CPU=yes``) or
``accelerate launch -m zoo.cli eval ...``; each process reads its share of the images and the sums are reduced.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from ..errors import InputError
from ..outputs import output_dir, positive_int

log = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="rFID, PSNR, SSIM, LPIPS, codebook usage, rate–distortion -> report/",
                       description="Evaluate tokenizers with the reference protocol (docs/eval.md).")
    p.add_argument("-m", "--model", required=True, help="NAME[,NAME...]: registered names or saved folders")
    p.add_argument("--data", nargs="+", help="folder(s), list.txt, shard-{000..009}.tar, hf:NAME[:SPLIT]")
    p.add_argument("--suite", help="a shipped suite (imagenet-val-50k, kodak, rate-distortion) or a suite YAML path giving defaults")
    p.add_argument("--metrics", help="comma list of rfid,psnr,ssim,lpips,usage (default: all that can run here; "
                   "rFID and LPIPS need their weights files, see docs/eval.md; the report says what was skipped)")
    p.add_argument("--tokens", help="token budgets, e.g. 32,64,128 (variable-length models): one row each")
    p.add_argument("-o", "--output", default="report", help="report folder: report.json, report.md, samples.png, rd.png (created; default: report)")
    p.add_argument("--checkpoint", help="official checkpoint file (one registered name only)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--crop", choices=["auto", "center", "center-bilinear", "albumentations", "adm", "var", "none"],
                   help="evaluation crop: auto (default: each model's official one; ImageFolder and LlamaGen 'adm', "
                        "VAR's VQVAE 'var', Open-MAGVIT2 'center-bilinear', IBQ 'albumentations', others 'center'), "
                        "center (torchvision Resize bicubic + CenterCrop on the PIL image), center-bilinear (the "
                        "same, bilinear), albumentations (OpenCV bilinear SmallestMaxSize + CenterCrop; needs opencv), "
                        "adm, var (Resize 1.125x Lanczos + CenterCrop), none")
    p.add_argument("--limit", type=positive_int, help="only the first N images")
    p.add_argument("--on-error", choices=["skip", "fail"], help="corrupt images: skip and count (default) or fail")
    p.add_argument("--ref-stats", help="reference statistics .npz: read if present (checked), else written")
    p.add_argument("--inception-weights", help="path of weights-inception-2015-12-05-6726825d.pth")
    p.add_argument("--fid-extractor", help="'inception' (default) or package.module:factory")
    p.add_argument("--lpips-net", choices=["alex", "vgg"])
    p.add_argument("--lpips-weights", help="path of alexnet-owt-7be5be79.pth / vgg16-397923af.pth")
    p.add_argument("--baselines", help="codecs at the tokenizer's bytes for rate–distortion: jpeg,webp (highest "
                                       "quality at or below the bytes, plus PSNR interpolated at exactly them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from ..cli import add_speed_options, add_workers_option

    add_workers_option(p)
    add_speed_options(p)
    p.set_defaults(func=cmd_eval)


def load_suite(name: str) -> dict[str, Any]:
    import yaml

    from ..resources import suite_path

    path = suite_path(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"suite {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise InputError(f"suite {path} must be a YAML mapping of settings, got {type(data).__name__}")
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
    from ..cli import _device, _parse_tokens, reading_workers, speed_options
    from ..loading import load
    from .report import mark_report_stale, write_report
    from .runner import ALL_METRICS, EvalConfig, Evaluator, dist_info

    suite = load_suite(args.suite) if args.suite else {}

    def pick(name: str, default: Any) -> Any:
        v = getattr(args, name)
        return v if v is not None else suite.get(name, default)

    data = args.data or _split(suite.get("data"))
    if not data:
        raise InputError("no data: pass --data PATH (or a --suite that names its data)")
    # metrics named on the command line must run; the default set (or a suite's) runs what it can here
    metrics = _split(pick("metrics", ",".join(ALL_METRICS)))
    tokens_text = pick("tokens", None)
    tokens = _parse_tokens(",".join(_split(tokens_text))) if tokens_text is not None else [None]
    batch_size, limit = pick("batch_size", 16), pick("limit", None)
    for key, value in (("batch_size", batch_size), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{key} must be a positive integer, got {value!r}")
    _init_distributed()
    rank, world = dist_info()
    device = _device(args.device)
    config = EvalConfig(
        metrics=tuple(metrics), batch_size=batch_size, crop=pick("crop", "auto"),
        on_error=pick("on_error", "skip"), limit=limit, ref_stats=pick("ref_stats", None),
        fid_extractor=args.fid_extractor, inception_weights=args.inception_weights,
        lpips_net=pick("lpips_net", "alex"), lpips_weights=args.lpips_weights, progress=not args.quiet,
        num_workers=reading_workers(args.workers, device), pin_memory=device.startswith("cuda"))
    evaluator = Evaluator(data, config)
    skipped = _unavailable_metrics(evaluator, metrics, explicit=args.metrics is not None)
    if skipped:
        config.metrics = tuple(m for m in metrics if m not in skipped)
        for metric, why in skipped.items():
            log.warning("not measuring %s: %s", metric, why)
    out = None
    if rank == 0:  # before any image is read: a bad -o fails at once, and an older report stops looking current
        out = output_dir(args.output)
        mark_report_stale(out)
    names = _split(args.model)
    if args.checkpoint and len(names) > 1:
        raise InputError("--checkpoint goes with one model")
    results = []
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    for name in names:
        model = speed_options(load(name, checkpoint=args.checkpoint, device=device), args)
        for k in _budgets_for(model, tokens, explicit=args.tokens is not None):
            results.append(evaluator.run(model, num_tokens=k))
            _echo(results[-1], rank, args.quiet)
    codecs = _split(pick("baselines", None))
    for codec in codecs:
        for r in [r for r in results if r.get("family") != "codec" and not r.get("continuous")]:
            results.append(evaluator.run_codec(codec, r["image_size"], r["bits_per_image"] / 8, r.get("crop")))
            _echo(results[-1], rank, args.quiet)
    if rank == 0:
        meta = {"data": evaluator.spec.describe() if evaluator.spec.kind != "files" else " ".join(data),
                "suite": suite.get("name"), "processes": world, "command": "zoo eval " + " ".join(sys.argv[2:]),
                "skipped_metrics": skipped}
        written = write_report(results, out, meta)
        print(f"wrote {written['md']} and {written['json']}")
    _finish_distributed()
    return 0


def _budgets_for(model: Any, tokens: list, explicit: bool) -> list:
    """The token budgets to evaluate `model` at. Budgets named with --tokens are used as given (a model that cannot
    take one says so); a suite's budgets apply to the models that can take them, and a fixed-length model is
    evaluated once at its own length."""
    spec = model.spec
    if explicit or tokens == [None]:
        return tokens
    fits = [k for k in tokens if k == "auto" or (spec.variable_length and spec.min_tokens <= k <= spec.max_tokens)]
    name = model.name or spec.family
    if not fits:
        log.info("%s has a fixed length: evaluated once at its %d tokens (the suite's budgets %s are for "
                 "variable-length models)", name, spec.max_tokens, tokens)
    elif fits != tokens:
        log.info("%s: evaluated at %s tokens, the suite's budgets it can take (of %s)", name,
                 ",".join(map(str, fits)), tokens)
    return fits or [None]


def _unavailable_metrics(evaluator: Any, metrics: list[str], explicit: bool) -> dict[str, str]:
    """Metrics that need weights or packages that are not here ({metric: why}), found before any image is read.

    Metrics the user asked for by name must run: the first that cannot raises its own error (which names the
    file or the extra). The default set runs what it can and reports the rest.
    """
    from ..errors import MissingExtraError, OfflineError

    needs = {"rfid": lambda: evaluator.extractor, "lpips": lambda: evaluator.lpips}
    skipped: dict[str, str] = {}
    for metric in metrics:
        if metric not in needs:
            continue
        try:
            needs[metric]()
        except (OfflineError, MissingExtraError) as exc:
            if explicit:
                raise
            skipped[metric] = str(exc)
    if skipped and not set(metrics) - set(skipped):
        raise InputError("none of the metrics can run here: " + "; ".join(f"{m}: {w}" for m, w in skipped.items()))
    return skipped


def _echo(r: dict, rank: int, quiet: bool) -> None:
    from .report import model_label

    if rank or quiet:
        return
    parts = [f"{k}={r[k]:.4g}" for k in ("psnr", "ssim", "lpips", "rfid", "bits_per_image") if r.get(k) is not None]
    speed = ""
    if r.get("images_per_s") and r.get("images_per_s_wall"):
        # whether the run is bound by the model or by reading images (raise --workers when the wait is large)
        speed = (f" ({r['images_per_s']:.3g} img/s model, {r['images_per_s_wall']:.3g} img/s whole pass, "
                 f"{100 * r.get('input_wait_share', 0.0):.0f} % waiting for images)")
    print(f"{model_label(r)} @ {r['num_tokens']}: " + " ".join(parts) + speed, file=sys.stderr)


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
