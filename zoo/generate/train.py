"""Training a class-conditional generator on the cached codes of any zoo tokenizer: MaskGIT (one code per
position) or the grouped next-token GPT (`zoo.generate.ar`: G sub-codes per position, e.g. UniTok's 8).

MaskGIT follows the released recipe (1d-tokenizer `configs/training/generator/maskgit.yaml`): arccos masking, label-smoothed CE
(0.1) with unmasked positions weighted 0.1, class dropout 0.1, AdamW (0.9, 0.96) wd 0.03, cosine schedule with
warmup to `end_lr`, grad clip 1.0. Codes are encoded once (`codes_cache`), so a step costs only the generator.

This is a small self-contained loop (one process): `zoo.train`'s trainer runs tokenizer forwards on image batches
and does not fit a model trained on codes.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..config import config_from_dict
from ..errors import ConfigError, InputError
from ..train.recipe import DataConfig, deep_merge, parse_overrides, read_recipe_file
from ..api import Codes
from .api import MaskGITGenerator
from .codes_cache import build_code_cache, load_code_cache
from .loading import save_generator
from .maskgit import MaskGITConfig, MaskGITSampling, mlm_loss

logger = logging.getLogger(__name__)


@dataclass
class GenModelConfig:
    """arch (MaskGIT only): "bert" or "uvit"; the AR generator uses pre-LN causal blocks with mlp_dim/width."""

    arch: str = "bert"
    width: int = 256
    depth: int = 8
    heads: int = 8
    mlp_dim: int = 1024
    dropout: float = 0.1


@dataclass
class GenOptimConfig:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.96])
    weight_decay: float = 0.03
    grad_clip: float = 1.0
    warmup_steps: int = 0
    end_lr: float = 1e-5


@dataclass
class GenTrainConfig:
    max_steps: int = 1000
    batch_size: int = 64
    log_every: int = 50
    label_smoothing: float = 0.1
    unmasked_weight: float = 0.1
    class_dropout: float = 0.1


@dataclass
class GeneratorRecipe:
    """A generator recipe (YAML). `generator`: "maskgit" or "ar" (next-token, any number of groups; "auto" picks
    "ar" for tokenizers with G > 1 groups); `tokenizer`: a registered name or a folder; `num_classes`: default one
    class per entry of `data.paths`; `crops_per_image`: crops encoded per image into the code cache; `sampling`:
    the generator's default sampler settings (MaskGITSampling / ARSampling fields)."""

    generator: str = "auto"
    tokenizer: str = ""
    tokenizer_checkpoint: str | None = None
    description: str = ""
    num_classes: int | None = None
    crops_per_image: int = 4
    encode_batch_size: int = 8
    cache_dir: str = "runs/code-cache"
    output: str = "runs/generator"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: GenModelConfig = field(default_factory=GenModelConfig)
    sampling: dict = field(default_factory=dict)
    optim: GenOptimConfig = field(default_factory=GenOptimConfig)
    train: GenTrainConfig = field(default_factory=GenTrainConfig)


def load_generator_recipe(recipe: str | os.PathLike | Mapping[str, Any],
                          overrides: Sequence[str] | Mapping[str, Any] = (),
                          image_size: int | None = None) -> GeneratorRecipe:
    """Read and validate a generator recipe. image_size: the tokenizer's image size, the crop size when the
    recipe gives no ``data.crop_size`` (so one recipe serves a 64-pixel tiny tokenizer and the 256-pixel default)."""
    values = read_recipe_file(recipe) if isinstance(recipe, (str, os.PathLike)) else dict(recipe)
    changes = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    values = deep_merge(values, changes)
    if image_size is not None and isinstance(values.get("data"), Mapping) and "crop_size" not in values["data"]:
        values["data"] = {**values["data"], "crop_size": image_size}
    rec = config_from_dict(GeneratorRecipe, values, where="generator recipe")
    if not rec.tokenizer:
        raise ConfigError("generator recipe: `tokenizer` (a registered name or a folder) is required")
    if not rec.data.paths:
        raise ConfigError("generator recipe: data.paths is empty")
    return rec


@dataclass
class GeneratorTrainResult:
    output: Path
    losses: list[float]
    cache: Path


def train_generator(recipe: str | os.PathLike | Mapping[str, Any] | GeneratorRecipe,
                    overrides: Sequence[str] | Mapping[str, Any] = (), output: str | os.PathLike | None = None,
                    log: Callable[[str], Any] | None = None, quiet: bool = False) -> GeneratorTrainResult:
    """Pre-tokenize (once), then train; writes the generator folder (`zoo.generate.load_generator(output)`).

    log: where messages go (default: this module's `logging` logger); step progress follows
    `zoo.progress.StepReport` (a bar on a terminal, INFO lines otherwise, nothing when `quiet`).
    """
    from ..loading import load
    from ..progress import StepReport

    if log is None:
        log = logger.info

    rec = recipe if isinstance(recipe, GeneratorRecipe) else load_generator_recipe(recipe, overrides)
    torch.manual_seed(rec.seed)
    tok = load(rec.tokenizer, checkpoint=rec.tokenizer_checkpoint)
    if not isinstance(recipe, GeneratorRecipe):  # no data.crop_size in the recipe: the tokenizer's image size
        rec = load_generator_recipe(recipe, overrides, image_size=tok.spec.image_size)
    out = Path(output or rec.output)
    kind = rec.generator if rec.generator != "auto" else ("ar" if tok.spec.num_groups > 1 else "maskgit")
    if kind not in ("maskgit", "ar"):
        raise ConfigError(f"generator must be 'maskgit', 'ar' or 'auto', got {rec.generator!r}")
    if kind == "maskgit" and tok.spec.num_groups != 1:
        raise InputError(f"the MaskGIT generator models one code per position; {rec.tokenizer} has "
                         f"{tok.spec.num_groups} groups per position: use generator: ar (or auto)")
    t0 = time.time()
    cache = build_code_cache(tok, rec.data, rec.cache_dir, rec.crops_per_image, rec.seed, rec.encode_batch_size)
    codes, labels, meta = load_code_cache(cache)
    log(f"code cache {cache}: {codes.batch_size} sequences of {codes.num_tokens} tokens ({time.time() - t0:.1f} s)")
    num_classes = rec.num_classes or len(rec.data.paths)
    if int(labels.max()) >= num_classes:
        raise ConfigError(f"num_classes {num_classes} is too small for label {int(labels.max())}")
    tok_name = getattr(tok, "name", None) or rec.tokenizer
    m = rec.model
    if kind == "maskgit":
        config = MaskGITConfig(codebook_size=codes.codebook_sizes[0], seq_len=codes.num_tokens,
                               num_classes=num_classes, **asdict(m))
        gen = MaskGITGenerator(config, config_from_dict(MaskGITSampling, rec.sampling, where="recipe.sampling"),
                               tokenizer=tok_name)
    else:
        from .ar import ARConfig, ARGenerator, ARSampling

        config = ARConfig(codebook_sizes=tuple(codes.codebook_sizes), seq_len=codes.num_tokens,
                          num_classes=num_classes, width=m.width, depth=m.depth, heads=m.heads,
                          mlp_ratio=m.mlp_dim / m.width, class_dropout=rec.train.class_dropout)
        gen = ARGenerator(config, config_from_dict(ARSampling, rec.sampling, where="recipe.sampling"),
                          tokenizer=tok_name)
    del tok
    gen.train()
    decay = [p for n, p in gen.named_parameters() if p.ndim > 1 and "embed" not in n]
    plain = [p for n, p in gen.named_parameters() if not (p.ndim > 1 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": rec.optim.weight_decay},
                             {"params": plain, "weight_decay": 0.0}], lr=rec.optim.lr, betas=tuple(rec.optim.betas))
    total, warm, end = rec.train.max_steps, rec.optim.warmup_steps, rec.optim.end_lr / rec.optim.lr

    def lr_at(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = torch.Generator().manual_seed(rec.seed)
    data = codes.indices
    losses: list[float] = []
    report = StepReport(total, "train-generator", logger, quiet=quiet)
    for step in range(total):
        idx = torch.randint(0, data.shape[0], (rec.train.batch_size,), generator=rng)
        target, y = data[idx], labels[idx]
        if kind == "maskgit":
            ids, mask = gen.model.mask_tokens(target[..., 0], rng)
            drop = torch.rand(y.shape[0], generator=rng) < rec.train.class_dropout
            loss, acc = mlm_loss(gen(ids, y, drop), target[..., 0], mask, rec.train.label_smoothing,
                                 rec.train.unmasked_weight)
        else:
            loss, acc = gen.loss(Codes(target, codebook_sizes=codes.codebook_sizes), y, rng), None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), rec.optim.grad_clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % rec.train.log_every == 0 or step + 1 == total:
            recent = losses[-rec.train.log_every:]
            values = {"loss": sum(recent) / len(recent)}
            if kind == "maskgit":
                values["masked_acc"] = float(acc)
            report.update(step + 1, {**values, "lr": sched.get_last_lr()[0]})
    report.close()
    gen.eval()
    save_generator(gen, out / "generator", extra={"recipe": json.loads(json.dumps(asdict(rec), default=str)),
                                                  "class_names": meta.get("class_names")})
    log(f"wrote {out / 'generator'}")
    return GeneratorTrainResult(out / "generator", losses, cache)
