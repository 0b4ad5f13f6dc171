"""Generation FID: sample N images class-balanced, extract features, compare with cached reference statistics.

Published protocol (TiTok, One-D-Piece, ImageFolder): N = 50,000, 50 per class (labels 0..999 repeated), the ADM
evaluator against ``VIRTUAL_imagenet256_labeled.npz``. Here the reference is a zoo statistics file written by
``zoo eval --ref-stats`` (features of real images with the zoo protocol); the protocol and the extractor must be
the same on both sides (`ReferenceStats.check`; the reference's crop is the one that counts, generated images are
not cropped). Any N is allowed: FIDs at different N are not comparable (FID is biased in N).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..api import Tokenizer
from ..errors import InputError
from .api import Generator


def balanced_labels(num_samples: int, num_classes: int, classes: Sequence[int] | None = None) -> Tensor:
    """int64 ``[N]``: labels ``0..C-1`` (or `classes`) repeated in order, as the published sampling scripts do."""
    pool = list(classes) if classes else list(range(num_classes))
    return torch.tensor([pool[i % len(pool)] for i in range(num_samples)], dtype=torch.long)


def generation_fid(generator: Generator, tokenizer: Tokenizer, ref_stats: Any, num_samples: int = 50_000,
                   seed: int = 0, batch_size: int = 50, extractor: Any = "inception",
                   inception_weights: str | os.PathLike | None = None, classes: Sequence[int] | None = None,
                   progress: Callable[[int, int], None] | None = None, **sampler: Any) -> dict[str, Any]:
    """gFID of `generator` decoded by `tokenizer` against `ref_stats` (a `.npz` path or `ReferenceStats`).

    Batch k is sampled with seed ``seed + k`` (reproducible for a given batch size). Returns ``gfid``, ``n``,
    ``reference_n``, ``extractor`` and ``protocol`` (the evaluation protocol plus labels, sampler, seed, batch size).
    """
    from ..eval import FeatureStats, ReferenceStats, build_extractor, frechet_distance, protocol
    from ..images import to_uint8

    if num_samples < 2:
        raise InputError(f"FID needs at least 2 samples, got {num_samples}")
    ref = ref_stats if isinstance(ref_stats, ReferenceStats) else ReferenceStats.load(ref_stats)
    ext = build_extractor(extractor, inception_weights)
    generator.check_tokenizer(tokenizer)
    proto = protocol(tokenizer.spec.image_size, "center", ext)
    proto["crop"] = ref.protocol.get("crop", proto["crop"])  # the real side's crop; samples are not cropped
    ref.check(proto, ext.describe(), "" if isinstance(ref_stats, ReferenceStats) else ref_stats)
    labels = balanced_labels(num_samples, generator.num_classes, classes)
    stats = FeatureStats()
    for k, start in enumerate(range(0, num_samples, batch_size)):
        chunk = labels[start:start + batch_size]
        images = generator.generate_images(tokenizer, chunk, seed=seed + k, **sampler)
        stats.update(ext(to_uint8(images)))
        if progress:
            progress(start + len(chunk), num_samples)
    mu, sigma = stats.mean_cov()
    what = "classes " + ",".join(map(str, classes)) + " repeated" if classes else f"0..{generator.num_classes - 1} repeated"
    return {"gfid": frechet_distance(mu, sigma, ref.mu, ref.sigma), "n": stats.n, "reference_n": ref.n,
            "extractor": ext.describe(), "generator": generator.name or generator.family,
            "tokenizer": getattr(tokenizer, "name", None),
            "protocol": {**proto, "labels": what, "seed": seed, "batch_size": batch_size,
                         "sampler": {**vars(generator.sampling), **sampler}}}
