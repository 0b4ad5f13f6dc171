"""Training recipes: one YAML file per (family, run), validated at start with every bad key named.

A recipe has a `family`, the family's `model` config (our config keys) and the sections below. `--set a.b=v`
overrides any key (the value is parsed as YAML: numbers, booleans, lists, null). Everything is checked before the
first step: unknown keys (with the closest known key), wrong types, impossible values, missing data folders.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import config_from_dict, config_to_dict
from ..errors import ConfigError, did_you_mean


@dataclass
class DataConfig:
    """Where images come from and how a training crop is made.

    source: "images" (folders, image files, or ``skimage:NAME`` for scikit-image's bundled photos),
        "webdataset" (local ``.tar`` shards, brace patterns allowed: ``shards/{000..009}.tar``) or
        "hf" (a Hugging Face dataset: `paths[0]` is its name or local folder; needs the `datasets` package).
    exclude: shell patterns of files (or ``skimage:NAME``) held out of training.
    resize_range: the shorter side is resized to a random size in [lo, hi] pixels (never upscaled past the
        original unless needed to fit the crop), then a random ``crop_size`` square is cut (ADM's random_crop_arr).
        With ``random_crop: false`` the centre crop of the shorter side resized to `crop_size` is used.
    cache_shorter: decode each image once, shrink its shorter side to this, and keep it in memory (small sets).
    permute_channels: reorder each crop's RGB channels at random (one of the 6 orders), so that a model trained on
        few photos meets every hue; a cheap colour augmentation (the embedded default's second stage uses it).
    saturation: ``[lo, hi]``: scale each crop's saturation by a random factor in that range (1 keeps it; the
        chroma is scaled about the pixel's luma, BT.601, then clipped to [0, 1]), so that colours more saturated
        than the training photos' are seen too.
    captions: also read each image's caption (CLIP-style training, e.g. UniTok): batches become
        ``(images, list of strings)``. Files: a sidecar ``<stem>.txt``; webdataset: the sample's ``.txt`` member
        (or ``.json`` with a "caption" / "text" field); hf: the `hf_text_key` column; ``skimage:NAME``: a short
        built-in description.
    """

    source: str = "images"
    paths: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    crop_size: int = 256
    random_crop: bool = True
    resize_range: list[int] | None = None
    flip: bool = True
    permute_channels: bool = False
    saturation: list[float] | None = None
    batch_size: int = 8  # per process
    num_workers: int = 0
    cache_shorter: int | None = None
    hf_split: str = "train"
    hf_image_key: str = "image"
    hf_text_key: str = "text"
    captions: bool = False
    webdataset_image_keys: list[str] = field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"])


@dataclass
class GANConfig:
    """Adversarial loss: hinge loss, a discriminator, optional LeCam and adaptive weight."""

    weight: float = 0.0  # 0 disables the discriminator entirely
    start: int = 0  # optimizer step at which the GAN terms switch on
    discriminator: str = "patchgan"  # "patchgan" (taming NLayer), "maskbit" (TiTok stage 2), "dino" (frozen DINO)
    channels: int = 64
    layers: int = 3
    norm: str = "batch"  # patchgan: batch | group | none
    dino_weights: str | None = None  # the DINO ViT-S/16 file (dino_deitsmall16_pretrain.pth) for "dino"
    adaptive: bool = False  # scale by ||grad NLL|| / ||grad G|| at the decoder's last layer
    adaptive_min: float = 0.0
    adaptive_max: float = 1e4
    lecam: float = 0.0  # LeCam regularisation weight (0.001 in the releases)
    lecam_decay: float = 0.999
    lr: float | None = None  # discriminator lr (default: optim.lr)
    betas: list[float] | None = None
    weight_decay: float | None = None


@dataclass
class LossConfig:
    """Weights of the generator losses (0 switches a term off)."""

    l1: float = 0.0
    l2: float = 1.0
    colour: float = 0.0  # squared error of colour_pool x colour_pool block means (zoo.train.losses.PixelLoss)
    colour_pool: int = 16
    lpips: float = 0.0
    lpips_vgg: str | None = None  # torchvision vgg16 weights (default: the torch hub cache)
    lpips_lin: str | None = None  # LPIPS linear layers, lpips' weights/v0.1/vgg.pth (default: standard places)
    convnext: float = 0.0  # MSE between torchvision convnext_small logits (TiTok's "perceptual" term)
    convnext_weights: str | None = None
    quantizer: float = 1.0  # commitment + codebook loss from the quantizer output
    entropy: float = 0.0  # per-sample entropy - codebook entropy of the soft assignment (MaskGIT/LlamaGen)
    entropy_temperature: float = 0.01
    gan: GANConfig = field(default_factory=GANConfig)
    # ---- family hooks (used by the family adapter when non-zero) ----
    proxy_ce: float = 0.0  # TiTok stage 1: cross-entropy against a frozen MaskGIT-VQGAN's codes
    teacher: str | None = None  # the proxy-code teacher: a registered name or a folder
    clip: float = 0.0  # UniTok: CLIP contrastive
    semantic: float = 0.0  # ImageFolder: semantic distillation; TokenFlow: 1 - cos feature distillation
    rollout_weights: list[float] | None = None  # ALIT: per-rollout weights


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | adam
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-8
    weight_decay: float = 1e-4
    no_decay: list[str] = field(default_factory=lambda: ["bias", "norm", "embedding", "token", "gamma", "ln_"])
    grad_clip: float | None = 1.0


@dataclass
class ScheduleConfig:
    name: str = "cosine"  # constant | cosine | linear
    warmup_steps: int = 0
    end_lr: float = 0.0  # lr at the last step (absolute)


@dataclass
class TrainConfig:
    max_steps: int = 1000  # optimizer steps
    grad_accum: int = 1
    mixed_precision: str = "no"  # no | fp16 | bf16
    ema_decay: float | None = None
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at update n, as diffusers' EMAModel
    stage: int | None = None  # family stage (TiTok/One-D-Piece: 1 = proxy codes, 2 = decoder fine-tuning)
    freeze: list[str] = field(default_factory=list)  # parameter-name patterns kept frozen (added to the family's)
    init: str | None = None  # start from a registered name, a zoo folder, or a run's checkpoint folder
    # with init: the recipe's `model` may make tensors larger than the init's; each init tensor fills the leading
    # corner of its grown tensor and the rest starts at zero (zoo.train.trainer.grow_from)
    grow: bool = False
    log_every: int = 10
    save_every: int = 500
    keep_last: int = 3
    restart_dead_codes: bool = False
    restart_every: int = 100  # optimizer steps between dead-code restarts (usage counted over that window)
    restart_threshold: float = 1.0  # codes used fewer times than this in the window are restarted
    find_unused_parameters: bool = False
    threads: int | None = None  # torch.set_num_threads for this run (CPU)
    export: str = "ema"  # the weights written to <output>/model: "ema" (when ema_decay is set) or "model"
    log_with: str = "auto"  # auto (tensorboard when installed, plus JSONL) | jsonl | tensorboard


@dataclass
class Recipe:
    family: str
    model: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    output: str = "runs/run"
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""
    source: str = ""  # where the published recipe's numbers come from

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


_CHOICES = {
    "data.source": ("images", "webdataset", "hf"),
    "loss.gan.discriminator": ("patchgan", "maskbit", "dino"),
    "loss.gan.norm": ("batch", "group", "none"),
    "optim.name": ("adamw", "adam"),
    "schedule.name": ("constant", "cosine", "linear"),
    "train.mixed_precision": ("no", "fp16", "bf16"),
    "train.export": ("ema", "model"),
    "train.log_with": ("auto", "jsonl", "tensorboard"),
}


# ---------------------------------------------------------------------------------------------------------------
def _yaml_loader() -> type:
    """PyYAML's SafeLoader, plus floats written without a dot (``1e-4``), which YAML 1.1 would read as strings."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


def yaml_load(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.max_steps=10", "loss.gan.weight=0.1"]`` -> a nested dict (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set takes key=value (dotted keys, e.g. train.max_steps=100), got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse {text!r}: {exc}") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is set to a value and used as a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe `path` names as a dict: a YAML file, or a shipped recipe by name (`zoo.resources.recipe_path`)."""
    import yaml

    from ..resources import recipe_path

    path = recipe_path(str(path))
    try:
        values = yaml_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}; "
                          "quote values with braces or colons") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping (family:, model:, data:, ...), got "
                          f"{type(values).__name__}")
    return values


def load_recipe(recipe: str | os.PathLike | Mapping[str, Any] | Recipe, overrides: Sequence[str] | Mapping = (),
                check_data: bool = True) -> Recipe:
    """Read (a path or a dict), apply ``--set`` overrides, validate everything; raise `ConfigError` naming the key."""
    if isinstance(recipe, Recipe):
        values = recipe.to_dict()
    elif isinstance(recipe, Mapping):
        values = dict(recipe)
    else:
        values = read_recipe_file(recipe)
    changes = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    values = deep_merge(values, changes)
    if "family" not in values:
        raise ConfigError("recipe: missing key 'family' (e.g. family: vqgan)")
    rec = config_from_dict(Recipe, values, where="recipe")
    validate(rec, check_data=check_data)
    return rec


def validate(rec: Recipe, check_data: bool = True) -> None:
    """Values that have the right type but are impossible; the family config; data that does not exist."""
    from ..registry import get_family, list_families

    for key, choices in _CHOICES.items():
        value = _get(rec, key)
        if value not in choices:
            raise ConfigError(f"recipe.{key}: {value!r} is not one of {list(choices)}")
    positive = ["data.crop_size", "data.batch_size", "train.max_steps", "train.grad_accum", "train.log_every",
                "train.save_every", "train.keep_last", "train.restart_every", "loss.colour_pool"]
    for key in positive:
        if _get(rec, key) < 1:
            raise ConfigError(f"recipe.{key} must be at least 1, got {_get(rec, key)}")
    nonneg = ["loss.l1", "loss.l2", "loss.colour", "loss.lpips", "loss.convnext", "loss.quantizer", "loss.entropy", "loss.gan.weight",
              "loss.gan.lecam", "loss.proxy_ce", "loss.clip", "loss.semantic", "optim.lr", "optim.weight_decay",
              "schedule.warmup_steps", "schedule.end_lr", "data.num_workers", "loss.gan.start"]
    for key in nonneg:
        if _get(rec, key) < 0:
            raise ConfigError(f"recipe.{key} must be >= 0, got {_get(rec, key)}")
    if rec.train.ema_decay is not None and not 0.0 < rec.train.ema_decay < 1.0:
        raise ConfigError(f"recipe.train.ema_decay must be in (0, 1) or null, got {rec.train.ema_decay}")
    if len(rec.optim.betas) != 2:
        raise ConfigError(f"recipe.optim.betas takes two numbers, got {rec.optim.betas}")
    if rec.loss.gan.betas is not None and len(rec.loss.gan.betas) != 2:
        raise ConfigError(f"recipe.loss.gan.betas takes two numbers, got {rec.loss.gan.betas}")
    if rec.data.resize_range is not None:
        r = rec.data.resize_range
        if len(r) != 2 or r[0] > r[1] or r[0] < 1:
            raise ConfigError(f"recipe.data.resize_range takes [lo, hi] pixels with 1 <= lo <= hi, got {r}")
    if rec.data.saturation is not None:
        r = rec.data.saturation
        if len(r) != 2 or not 0 <= r[0] <= r[1]:
            raise ConfigError(f"recipe.data.saturation takes [lo, hi] factors with 0 <= lo <= hi, got {r}")
    if rec.train.grow and rec.train.init is None:
        raise ConfigError("recipe.train.grow needs train.init (the model to grow from)")
    if rec.train.export == "ema" and rec.train.ema_decay is None:
        rec.train.export = "model"  # nothing else to export
    # the family and its config (unknown keys are named with the family's config class)
    if rec.family not in list_families():
        raise ConfigError(f"recipe.family: unknown family {rec.family!r}; known: {list_families()}."
                          f"{did_you_mean(rec.family, list_families())}")
    spec = get_family(rec.family)
    config_from_dict(spec.config_cls, rec.model, where="recipe.model")
    if check_data:
        check_data_paths(rec.data)


def check_data_paths(data: DataConfig) -> None:
    """Every path must exist (skimage names must be photos scikit-image ships), before training starts."""
    if not data.paths:
        raise ConfigError("recipe.data.paths is empty: list image folders, files, skimage:NAME photos, "
                          "webdataset shards or a Hugging Face dataset name")
    if data.source == "hf":
        return  # a hub name or a local folder; checked when the dataset is opened (needs `datasets`)
    from ..images import skimage_photo_names
    from ..shards import expand_braces

    for i, p in enumerate(data.paths):
        if p.startswith("skimage:"):
            from ..extras import require

            require("skimage.data", f"recipe.data.paths[{i}] ({p}: scikit-image's bundled photo)")
            name = p.split(":", 1)[1]
            names = skimage_photo_names()
            if name not in names:
                raise ConfigError(f"recipe.data.paths[{i}]: scikit-image has no photo {name!r}.{did_you_mean(name, names)}")
            continue
        for q in expand_braces(p) if data.source == "webdataset" else [p]:
            if not Path(q).exists():
                what = "shard" if data.source == "webdataset" else "data folder or file"
                raise ConfigError(f"recipe.data.paths[{i}]: {what} not found: {q}")


def _get(rec: Any, dotted: str) -> Any:
    node = rec
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def recipe_keys(cls: type = Recipe, prefix: str = "") -> list[str]:
    """Every dotted key of the recipe schema (for docs and error messages)."""
    out = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out.extend(recipe_keys(type(default), key + "."))
        else:
            out.append(key)
    return out
