"""The evaluation loop: stream the data once per (model, budget), reconstruct through the public Tokenizer
interface, accumulate mergeable sums, reduce them across processes, return one result dict.

Protocol (recorded in every result): crop the originals with `crop` to the model's size (by default the model's
family's official evaluation crop, `TokenizerSpec.eval_crop`, run on the PIL image as the official code does),
round them to uint8;
model input = those pixels / 255; reconstructions are clamped and rounded to uint8 before any metric; FID uses
the extractor's features of the same uint8 crops (TF1-exact resize to 299 for Inception).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ..api import Tokenizer
from ..errors import InputError
from ..images import CROP_PROTOCOLS, describe_crop, to_uint8
from .data import DataSpec, loader, parse_data
from .features import FeatureExtractor, build_extractor
from .metrics import LPIPS, CodeUsage, psnr, ssim
from .stats import FeatureStats, ReferenceStats, frechet_distance

ALL_METRICS = ("rfid", "psnr", "ssim", "lpips", "usage")
CONTINUOUS_BITS_NOTE = ("continuous latents stored as float16 (16 bits x C x h x w): an upper bound of a storage "
                        "format, not a code; not comparable with discrete tokens' bits")


def dist_info() -> tuple[int, int]:
    """(rank, world size) of torch.distributed, or (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _sum_all(values: list[float]) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    if dist_info()[1] > 1:
        dist.all_reduce(t)
    return t.tolist()


def _max_all(value: float) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    if dist_info()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t[0])


@dataclass
class EvalConfig:
    metrics: Sequence[str] = ALL_METRICS
    batch_size: int = 16
    crop: str = "auto"  # "auto" (each model's official crop, TokenizerSpec.eval_crop) or a CROP_PROTOCOLS name
    on_error: str = "skip"
    limit: int | None = None
    num_workers: int = 0  # image-reading worker processes (DataLoader)
    read_ahead: int = 2  # without workers: batches a background thread reads ahead (0: read in the loop)
    pin_memory: bool = False  # page-locked batches (faster, asynchronous copies to a GPU)
    ref_stats: str | os.PathLike | None = None  # cached real-side statistics (.npz; may hold {crop}, {size}), read or written
    fid_extractor: Any = None  # "inception" (default), a FeatureExtractor / nn.Module, or "module:factory"
    inception_weights: str | os.PathLike | None = None
    lpips_net: str = "alex"
    lpips_weights: str | os.PathLike | None = None
    samples: int = 8  # images kept for the reconstruction grid
    progress: bool = False

    def __post_init__(self) -> None:
        bad = [m for m in self.metrics if m not in ALL_METRICS]
        if bad:
            raise InputError(f"unknown metrics {bad}; choose from {', '.join(ALL_METRICS)}")
        if self.read_ahead < 0:
            raise InputError(f"read_ahead must be 0 or more, got {self.read_ahead}")
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1")
        if self.crop != "auto" and self.crop not in CROP_PROTOCOLS:
            raise InputError(f"unknown crop {self.crop!r}; use 'auto' or one of {', '.join(CROP_PROTOCOLS)}")

    def crop_for(self, model_crop: str | None) -> str:
        """The crop protocol a run uses: the configured one, or with "auto" the model's official one."""
        return (model_crop or "center") if self.crop == "auto" else self.crop


def protocol(size: int, crop: str, extractor: FeatureExtractor | None) -> dict:
    """What makes two FIDs comparable, written into reports and reference statistics."""
    import torchmetrics

    proto = {
        "size": size,
        "crop": f"{crop}: {describe_crop(crop)}",
        "quantize": "clamp to [0,1], x*255, round to uint8 (originals and reconstructions)",
        "fid_resize": "TF1-exact bilinear to 299 (torchmetrics antialias=False == torch-fidelity)",
        "fid_stats": "float64 sums, unbiased covariance",
        "torchmetrics": torchmetrics.__version__,
    }
    if extractor is not None:
        proto["fid_features"] = extractor.name
    return proto


class Evaluator:
    """Evaluate tokenizers on one dataset; the real-side FID statistics are computed once per image size."""

    def __init__(self, data: str | Sequence[str] | DataSpec, config: EvalConfig | None = None) -> None:
        self.spec = data if isinstance(data, DataSpec) else parse_data(data)
        self.config = config or EvalConfig()
        self._extractor: FeatureExtractor | None = None
        self._lpips: LPIPS | None = None
        self._real: dict[tuple[int, str], ReferenceStats] = {}

    # ---- lazily built networks (so a run without rfid / lpips needs no weights) ----
    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            self._extractor = build_extractor(self.config.fid_extractor, self.config.inception_weights)
        return self._extractor

    @property
    def lpips(self) -> LPIPS:
        if self._lpips is None:
            self._lpips = LPIPS(self.config.lpips_net, self.config.lpips_weights)
        return self._lpips

    def _batches(self, size: int, crop: str):
        rank, world = dist_info()
        c = self.config
        return loader(self.spec, size, c.batch_size, crop, c.on_error, rank, world, c.limit, c.num_workers,
                      c.pin_memory, c.read_ahead)

    def _progress(self, it, desc: str):
        from ..progress import progress

        rank, world = dist_info()
        total = None
        if self.spec.kind == "files":  # known ahead: this process's share of the files, in batches
            n = len(self.spec.items) if self.config.limit is None else min(self.config.limit, len(self.spec.items))
            total = math.ceil(math.ceil(n / world) / self.config.batch_size)
        return progress(it, total=total, desc=desc, unit="batch", quiet=not self.config.progress or rank != 0)

    # ---- the real side ----
    def reference(self, size: int, crop: str | None = None) -> ReferenceStats:
        """Real-side statistics for `size` and `crop` (default: the configured crop, "center" for "auto"): from
        `ref_stats` if it exists (checked), else computed (and saved)."""
        crop = self.config.crop_for(None) if crop is None else crop
        key = (size, crop)
        if key in self._real:
            return self._real[key]
        ext = self.extractor
        proto = protocol(size, crop, ext)
        path = self.config.ref_stats
        if path is not None:
            path = str(path).replace("{crop}", crop).replace("{size}", str(size))  # one file per protocol
        if path is not None and Path(path).is_file():
            ref = ReferenceStats.load(path)
            ref.check(proto, ext.describe(), path)
        else:
            stats = FeatureStats()
            device = _first_device(ext)
            batches = self._batches(size, crop)
            for _, batch in self._progress(batches, "reference features"):
                stats.update(ext(batch.to(device)))
            stats.all_reduce()
            ref = ReferenceStats.from_stats(stats, proto, ext.describe())
            if path is not None and dist_info()[0] == 0:
                ref.save(path)
        self._real[key] = ref
        return ref

    # ---- one model at one budget ----
    def run(self, model: Tokenizer, num_tokens: int | str | None = None) -> dict[str, Any]:
        """Metrics of `model` (at budget `num_tokens`) through its public encode / decode only."""
        spec = model.spec
        device = model.device
        model.eval()

        continuous = getattr(spec, "continuous", False)

        def step(batch: Tensor) -> tuple[Tensor, Tensor | None, Any, dict[str, float]]:
            codes = model.encode(batch.to(device, non_blocking=True).float() / 255, num_tokens=num_tokens)
            bits = codes.bits() if continuous else None  # Latents: float16 storage; Codes: counted by CodeUsage
            return to_uint8(model.decode(codes)), bits, None if continuous else codes, {}

        label = {"model": model.name or spec.family, "family": spec.family,
                 "num_tokens": num_tokens or spec.max_tokens, "precision": getattr(model, "precision", "fp32")}
        if continuous:
            label.update({"continuous": True, "bits_note": CONTINUOUS_BITS_NOTE})
        crop = self.config.crop_for(getattr(spec, "eval_crop", None))
        usage = None if continuous else CodeUsage(spec.codebook_sizes)
        return self._loop(spec.image_size, crop, step, label, device, usage)

    def run_codec(self, codec: str, size: int, target_bytes: float, crop: str | None = None) -> dict[str, Any]:
        """A Pillow codec ("jpeg" / "webp") matched to `target_bytes` per image: the rate–distortion baseline.

        Each image uses the codec's highest quality whose file is at most the target (quality 1, flagged as
        unreachable, when even that is larger); the row reports the real bytes, how many images could not reach
        the target, and the PSNR at exactly the target interpolated in log bytes on each image's rate curve
        (see `zoo.eval.rd`). `crop`: the matched model row's crop (default: the configured one).
        """
        from .rd import CODEC_SETTINGS, codec_roundtrip

        def step(batch: Tensor) -> tuple[Tensor, Tensor | None, Any, dict[str, float]]:
            m = codec_roundtrip(batch, codec, target_bytes)
            ok = m.reachable
            extra = {"unreachable": float((~ok).sum()), "unreachable_bytes": float(m.nbytes[~ok].double().sum()),
                     "saturated": float(m.saturated.sum()), "psnr_at_target": float(m.psnr_at_target[ok].sum()),
                     "psnr_at_target_images": float(ok.sum())}
            return m.decoded, m.nbytes.double() * 8, None, extra

        label = {"model": codec.upper(), "family": "codec", "num_tokens": None, "target_bytes": target_bytes,
                 "codec": CODEC_SETTINGS[codec] if codec in CODEC_SETTINGS else codec}
        keys = ("unreachable", "unreachable_bytes", "saturated", "psnr_at_target", "psnr_at_target_images")
        res = self._loop(size, self.config.crop_for(crop), step, label, torch.device("cpu"), None, keys)
        extra = res.pop("_extra")
        n_ok, n_bad = int(extra["psnr_at_target_images"]), int(extra["unreachable"])
        res.update({
            "bytes_per_image": res["bits_per_image"] / 8,
            "unreachable": n_bad,
            "unreachable_bytes_mean": extra["unreachable_bytes"] / n_bad if n_bad else None,
            "saturated": int(extra["saturated"]),
            "psnr_at_target": extra["psnr_at_target"] / n_ok if n_ok else None,
            "psnr_at_target_images": n_ok,
            "rd_match": "per image, the highest quality whose file is at most the target (real bytes reported; "
                        "quality 1 where even that is larger: 'unreachable'); psnr_at_target: PSNR at exactly the "
                        "target, linear in log bytes between that quality and the next (reachable images only)",
        })
        return res

    def _loop(self, size: int, crop: str, step, label: dict, device: torch.device, usage: CodeUsage | None,
              extra_keys: Sequence[str] = ()) -> dict[str, Any]:
        """One pass over the data: `step(uint8 batch)` -> (uint8 reconstructions, bits per image or None, codes or
        None, {extra key: batch sum}); metrics summed per image, reduced over processes."""
        c = self.config
        want = set(c.metrics)
        ref = self.reference(size, crop) if "rfid" in want else None
        ext = self.extractor.to(device) if "rfid" in want else None
        lp = self.lpips.to(device) if "lpips" in want else None
        fake = FeatureStats()
        sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "bits": 0.0}
        extra_sums = {k: 0.0 for k in extra_keys}
        n, model_seconds, wait_seconds = 0, 0.0, 0.0
        samples: list[tuple[Tensor, Tensor]] = []
        batches = self._batches(size, crop)
        started = waiting = time.perf_counter()
        for _, batch in self._progress(batches, f"{label['model']} @ {label['num_tokens']}"):
            t0 = time.perf_counter()
            wait_seconds += t0 - waiting  # the loop had nothing to do but wait for this batch
            rec8, bits, codes, extra = step(batch)
            for k, v in extra.items():
                extra_sums[k] += v
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            model_seconds += time.perf_counter() - t0
            org8 = batch.to(rec8.device)
            # per-image values summed in float64: the total does not depend on how images are batched or split
            if "psnr" in want:
                sums["psnr"] += float(psnr(org8, rec8).double().sum())
            if "ssim" in want:
                sums["ssim"] += float(ssim(org8, rec8).double().sum())
            if lp is not None:
                sums["lpips"] += float(lp(org8.to(device), rec8.to(device)).double().sum())
            if ext is not None:
                fake.update(ext(rec8.to(device)))
            if usage is not None:
                usage.update(codes)
            if bits is not None:
                sums["bits"] += float(bits.sum())
            if len(samples) * c.batch_size < c.samples:
                samples.append((org8.cpu(), rec8.cpu()))
            n += batch.shape[0]
            waiting = time.perf_counter()
        wall_seconds = time.perf_counter() - started
        total = _sum_all([n, batches.skipped, sums["psnr"], sums["ssim"], sums["lpips"], sums["bits"]]
                         + [extra_sums[k] for k in extra_keys])
        n_all, skipped = int(total[0]), int(total[1])
        if n_all == 0:
            raise InputError(f"no readable images in {self.spec.describe()} ({skipped} corrupt ones skipped)")
        seconds, wall = _max_all(model_seconds), _max_all(wall_seconds)
        result: dict[str, Any] = dict(label)
        result.update({"images": n_all, "skipped": skipped, "image_size": size, "crop": crop,
                       "images_per_s": n_all / seconds if seconds > 0 else None,
                       "images_per_s_wall": n_all / wall if wall > 0 else None,
                       "input_wait_share": _max_all(wait_seconds / wall_seconds if wall_seconds > 0 else 0.0)})
        for i, m in enumerate(("psnr", "ssim", "lpips")):
            if m in want:
                result[m] = total[2 + i] / n_all
        if usage is not None:
            usage.all_reduce()
            u = usage.summary(n_all)
            result["bits_per_image"] = u["bits_per_image"]
            result["tokens_per_image"] = u["tokens_per_image"]
            if "usage" in want:
                result["usage"] = u["groups"]
        else:
            result["bits_per_image"] = total[5] / n_all
        if ext is not None and ref is not None:
            fake.all_reduce()
            mu, sigma = fake.mean_cov()
            result["rfid"] = frechet_distance(ref.mu, ref.sigma, mu, sigma)
            result["rfid_reference_n"] = ref.n
        if lp is not None:
            result["lpips_net"] = f"{lp.net_name} (sha256 {lp.sha256[:12]}, " \
                                  f"{'verified' if lp.verified else 'unverified'})"
        result["protocol"] = protocol(size, crop, ext)
        if extra_keys:
            result["_extra"] = dict(zip(extra_keys, total[6:]))
        if ext is not None:
            result["fid_extractor"] = ext.describe()
        if samples:
            result["_samples"] = (torch.cat([s[0] for s in samples])[:c.samples],
                                  torch.cat([s[1] for s in samples])[:c.samples])
        return result


def _first_device(module: torch.nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def evaluate(model: Tokenizer, data: str | Sequence[str] | DataSpec, num_tokens: int | str | None = None,
             **config: Any) -> dict[str, Any]:
    """One-call evaluation: ``zoo.eval.evaluate(tok, "photos/", metrics=("psnr", "rfid"))``."""
    return Evaluator(data, EvalConfig(**config)).run(model, num_tokens)


def fid(data1: str | Sequence[str] | DataSpec, data2: str | Sequence[str] | DataSpec, size: int,
        crop: str = "center", extractor: Any = None, inception_weights: str | os.PathLike | None = None,
        batch_size: int = 16) -> float:
    """FID between two image sets (generation, or reconstructions saved as files), same protocol both sides."""
    ext = build_extractor(extractor, inception_weights)
    rank, world = dist_info()
    out = []
    for data in (data1, data2):
        stats = FeatureStats()
        for _, batch in loader(data, size, batch_size, crop, "skip", rank, world):
            stats.update(ext(batch))
        stats.all_reduce()
        out.append(stats.mean_cov())
    return frechet_distance(*out[0], *out[1])
