"""The one trainer: every family, on accelerate (CPU, one GPU, DDP, FSDP, multi-node), driven by a recipe.

Launch: ``zoo train RECIPE`` (one process), or ``accelerate launch -m zoo.cli train RECIPE`` /
``torchrun --nproc_per_node N -m zoo.cli train RECIPE`` (set ``ACCELERATE_USE_CPU=yes`` for CPU processes).

One optimizer step = `train.grad_accum` micro-batches of `data.batch_size` images per process. Per micro-batch:
1. the family adapter runs the training forward -> reconstruction, quantizer output, family losses;
2. generator loss = pixel (L1/L2) + LPIPS + ConvNeXt + VQ + entropy + family terms + GAN (hinge generator loss,
   optionally times the adaptive weight, from `loss.gan.start`); backward;
3. with a GAN: discriminator hinge loss (+ LeCam) on real vs detached reconstructions; backward.
At each optimizer step: clip, step, schedule, EMA update, codebook usage (and dead-code restarts), logs, checkpoints.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..config import config_to_dict
from ..errors import ConfigError
from ..outputs import output_dir
from .adapters import StepOutput, freeze, get_adapter
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .data import build_stream
from .discriminators import build_discriminator
from .ema import EMA
from .logger import TrainLogger, tensorboard_available
from .losses import LeCam, PixelLoss, adaptive_gan_weight, entropy_loss, hinge_d_loss, hinge_g_loss
from .recipe import Recipe, load_recipe

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    output: Path
    step: int
    model_dir: Path | None  # the exported zoo folder (load it with zoo.load)
    last_log: dict[str, float]


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------
def _lr_lambda(rec: Recipe) -> Callable[[int], float]:
    """Multiplier of `optim.lr` at optimizer step s: linear warmup, then constant / cosine / linear to `end_lr`."""
    total, warm, base = rec.train.max_steps, rec.schedule.warmup_steps, rec.optim.lr
    end = rec.schedule.end_lr / base if base > 0 else 0.0
    name = rec.schedule.name

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if name == "constant":
            return 1.0
        t = min(1.0, (step - warm) / max(1, total - warm))
        if name == "cosine":
            return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0 + (end - 1.0) * t

    return f


def _param_groups(model: nn.Module, weight_decay: float, no_decay: Sequence[str]) -> list[dict]:
    """Trainable parameters in two groups: with weight decay, and without (1-D params and names in `no_decay`)."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lowered = name.lower()
        if p.ndim <= 1 or any(tag in lowered for tag in no_decay):
            plain.append(p)
        else:
            decay.append(p)
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0})
              if g["params"]]
    if not groups:
        raise ConfigError("recipe: every parameter is frozen (train.freeze and the stage's frozen parts): "
                          "nothing to train")
    return groups


def _optimizer(name: str, groups: list[dict], lr: float, betas: Sequence[float], eps: float) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=tuple(betas), eps=eps)


def _build_model(rec: Recipe) -> nn.Module:
    from ..loading import build, load

    if rec.train.init is None:
        torch.manual_seed(rec.seed)  # the same initial weights on every process and every run
        return build(rec.family, rec.model)
    src = Path(rec.train.init)
    if (src / "checkpoints").is_dir() or src.name.startswith("step_"):
        raise ConfigError(f"recipe.train.init: {src} is a training run; use its exported model folder "
                          f"({src / 'model'}) or resume it with --resume")
    model = load(rec.train.init)
    if model.family != rec.family:
        raise ConfigError(f"recipe.train.init {rec.train.init!r} is a {model.family} model, the recipe trains "
                          f"{rec.family}")
    if rec.train.grow:
        torch.manual_seed(rec.seed)
        return grow_from(model, build(rec.family, rec.model), rec.train.init)
    have = config_to_dict(model.config)
    for key, value in rec.model.items():
        if key in have and have[key] != (list(value) if isinstance(value, tuple) else value):
            raise ConfigError(f"recipe.model.{key}={value!r} differs from {rec.train.init!r}'s {have[key]!r}: "
                              "drop it from the recipe (sizes come from the init model)")
    return model


def grow_from(small: nn.Module, large: nn.Module, name: str = "the init model") -> nn.Module:
    """Warm-start `large` from `small`, a model of the same family with some tensors smaller (e.g. one more
    quantizer channel), keeping `small`'s function (Net2Net-style widening).

    Each of `small`'s tensors is copied into the leading corner of `large`'s tensor of the same name. Of the grown
    part, the weights that read a new input channel (dimension 1 of a weight ``[out, in, ...]``) are set to zero,
    so nothing new reaches the old outputs; new output channels (rows, and 1-D tensors such as biases and norm
    weights) keep `large`'s own initialisation, so they differ from each other and start learning at once. Tensors
    `small` lacks keep `large`'s initialisation.
    """
    small_sd, large_sd = small.state_dict(), large.state_dict()
    extra = sorted(set(small_sd) - set(large_sd))
    if extra:
        raise ConfigError(f"recipe.train.grow: {name} has tensors the recipe's model lacks: {extra[:5]}")
    for key, old in small_sd.items():
        new = large_sd[key]
        if old.dim() != new.dim() or any(a > b for a, b in zip(old.shape, new.shape)):
            raise ConfigError(f"recipe.train.grow: {key} is {tuple(old.shape)} in {name} and "
                              f"{tuple(new.shape)} in the recipe's model: it can only grow")
        if new.dim() >= 2 and new.shape[1] > old.shape[1]:
            new[:, old.shape[1]:] = 0
        new[tuple(slice(0, n) for n in old.shape)] = old
    large.load_state_dict(large_sd)
    return large


def _resolve_init_config(rec: Recipe) -> None:
    """With `train.init`, the model's sizes come from it: fill `recipe.model` so every check sees the real config."""
    if rec.train.init is None:
        return
    from ..loading import read_folder_config
    from ..registry import get_entry

    src = Path(rec.train.init)
    if src.is_dir():
        if not (src / "config.json").is_file():
            raise ConfigError(f"recipe.train.init: {src} is not a model folder (no config.json); a run's model is "
                              f"in <run>/model")
        init_config = read_folder_config(src)["config"]
    else:
        try:
            init_config = dict(get_entry(rec.train.init).config)
        except KeyError as exc:
            raise ConfigError(f"recipe.train.init: {exc}") from None
    rec.model = {**init_config, **rec.model}


class _QuantizerTap:
    """Keeps the latest input of each watched quantizer (for the entropy loss and dead-code restarts)."""

    def __init__(self, quantizers: list[nn.Module]) -> None:
        self.inputs: list[Tensor | None] = [None] * len(quantizers)
        self.handles = [q.register_forward_pre_hook(self._hook(i)) for i, q in enumerate(quantizers)]

    def _hook(self, i: int):
        def hook(module: nn.Module, args: tuple) -> None:
            if module.training:
                self.inputs[i] = args[0]
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _all_reduce(t: Tensor) -> Tensor:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(t)
    return t


def _usage(counts: Tensor) -> dict[str, float]:
    total = counts.sum().clamp_min(1)
    p = counts / total
    nz = p[p > 0]
    return {"codebook/used_fraction": float((counts > 0).float().mean()),
            "codebook/perplexity": float(torch.exp(-(nz * nz.log()).sum()))}


# ---------------------------------------------------------------------------------------------------------------
def train(recipe: str | os.PathLike | Mapping | Recipe, overrides: Sequence[str] | Mapping = (),
          output: str | os.PathLike | None = None, resume: bool = False,
          callback: Callable[[int, dict[str, float]], bool] | None = None, quiet: bool = False) -> TrainResult:
    """Train with a recipe (path, dict or Recipe) and ``--set`` style overrides.

    output: the run folder (default: the recipe's `output`). resume: continue from its newest complete checkpoint.
    callback(step, logs) -> True stops the run at once, as a kill would (nothing more is saved); used by tests.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    rec = load_recipe(recipe, overrides)
    if output is not None:
        rec.output = str(output)
    out = Path(rec.output)
    threads_before = torch.get_num_threads()
    if rec.train.threads:
        torch.set_num_threads(rec.train.threads)
    _resolve_init_config(rec)
    adapter = get_adapter(rec.family)
    adapter.check(rec)
    if rec.train.ema_decay is not None and os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true", "yes"):
        raise ConfigError("recipe.train.ema_decay: EMA with FSDP is not supported yet (the averaged weights would be "
                          "sharded); set train.ema_decay: null under FSDP")
    if not resume and latest_checkpoint(out) is not None:
        raise ConfigError(f"{out} already holds checkpoints: pass --resume to continue that run, or another --output")

    use_tb = rec.train.log_with != "jsonl" and tensorboard_available()
    _reset_accelerate_state()  # a previous run in this process fixed mixed precision etc. in accelerate's singleton
    accelerator = Accelerator(
        mixed_precision=rec.train.mixed_precision, gradient_accumulation_steps=rec.train.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=rec.train.find_unused_parameters)],
        log_with=["tensorboard"] if use_tb else None, project_dir=str(out),
    )
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    main = accelerator.is_main_process
    if main:
        output_dir(out, "output")
        _write_recipe(rec, out / "recipe.yaml")

    # ---- model, stage, losses ----
    raw = _build_model(rec).to(device).train()
    adapter.setup(raw, rec, device)
    frozen = freeze(raw, adapter.frozen(rec) + list(rec.train.freeze))
    gcfg = rec.loss.gan
    disc_raw = build_discriminator(gcfg.discriminator, gcfg.channels, gcfg.layers, gcfg.norm,
                                   gcfg.dino_weights).to(device).train() if gcfg.weight > 0 else None
    lecam = LeCam(gcfg.lecam_decay).to(device) if disc_raw is not None and gcfg.lecam > 0 else None
    pixel = PixelLoss(rec.loss.l1, rec.loss.l2, rec.loss.colour, rec.loss.colour_pool)
    lpips = convnext = None
    if rec.loss.lpips:
        from .perceptual import LPIPS

        lpips = LPIPS(rec.loss.lpips_vgg, rec.loss.lpips_lin).to(device)
    if rec.loss.convnext:
        from .perceptual import ConvNeXtLogitLoss

        convnext = ConvNeXtLogitLoss(rec.loss.convnext_weights).to(device)

    # ---- optimizers and schedules (ours: stepped once per optimizer step, whatever the process count) ----
    opt = _optimizer(rec.optim.name, _param_groups(raw, rec.optim.weight_decay, rec.optim.no_decay), rec.optim.lr,
                     rec.optim.betas, rec.optim.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(rec))
    opt_d = sched_d = None
    if disc_raw is not None:
        d_lr = gcfg.lr if gcfg.lr is not None else rec.optim.lr
        d_wd = gcfg.weight_decay if gcfg.weight_decay is not None else rec.optim.weight_decay
        opt_d = _optimizer(rec.optim.name, _param_groups(disc_raw, d_wd, rec.optim.no_decay), d_lr,
                           gcfg.betas or rec.optim.betas, rec.optim.eps)
        sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, _lr_lambda(rec))
    if disc_raw is not None:
        model, opt, disc, opt_d = accelerator.prepare(raw, opt, disc_raw, opt_d)
    else:
        model, opt = accelerator.prepare(raw, opt)
        disc = None
    raw = accelerator.unwrap_model(model)
    disc_raw = accelerator.unwrap_model(disc) if disc is not None else None
    d_params = [p for p in disc_raw.parameters() if p.requires_grad] if disc_raw is not None else []
    ema = EMA(raw, rec.train.ema_decay, rec.train.ema_warmup) if rec.train.ema_decay is not None else None
    quantizers = adapter.quantizers(raw)
    tap = _QuantizerTap(quantizers)
    usage_size = max(raw.spec.codebook_sizes)  # codebook usage is counted from the codes, for every family
    window_counts = [torch.zeros(usage_size, dtype=torch.float64)]  # since the last dead-code restart
    log_counts = [torch.zeros(usage_size, dtype=torch.float64)]  # since the last log
    stream = build_stream(rec.data, rec.seed, rank, world)
    last_layer = adapter.last_layer(raw)
    if last_layer is not None and not last_layer.requires_grad:
        last_layer = None

    # ---- seeds, then resume ----
    _seed_all(rec.seed * 1000 + rank)
    step = 0
    logger = TrainLogger(accelerator, out, rec.train.log_with, rec.to_dict(), quiet=quiet)
    ckpt = latest_checkpoint(out) if resume else None
    parts = {"model": model, "optimizer": opt, "discriminator": disc, "optimizer_disc": opt_d, "ema": ema}
    if ckpt is not None:
        state = load_checkpoint(accelerator, ckpt, parts)
        step = int(state["step"])
        sched.load_state_dict(state["scheduler"])
        if sched_d is not None:
            sched_d.load_state_dict(state["scheduler_disc"])
        stream.load_state_dict(state["data"])
        if accelerator.scaler is not None and state.get("scaler"):  # fp16 loss scale
            accelerator.scaler.load_state_dict(state["scaler"])
        tensors = state.get("tensors", {})
        if lecam is not None and "lecam.ema_real" in tensors:
            lecam.load_state_dict({k[len("lecam."):]: v for k, v in tensors.items() if k.startswith("lecam.")})
        for i in range(len(window_counts)):
            if f"usage_window.{i}" in tensors:
                window_counts[i] = tensors[f"usage_window.{i}"].double()
        accelerator.step = step * rec.train.grad_accum  # accumulation boundaries stay where they were
        logger.rewind(step)  # steps logged after this checkpoint are logged again by this run
        logger.echo(f"resumed from {ckpt} at step {step} (data position {stream.position})")
    elif resume:
        logger.echo(f"--resume: no checkpoint in {out}; starting at step 0")
        logger.rewind(0)
    logger.echo(f"{rec.family}: {sum(p.numel() for p in raw.parameters()):,} parameters "
                f"({len(frozen)} frozen tensors), {world} process(es) on {device}, "
                f"global batch {rec.data.batch_size * world * rec.train.grad_accum}, logs: {'+'.join(logger.trackers)}")

    def save(at: int) -> None:
        tensors: dict[str, Tensor] = {f"usage_window.{i}": c for i, c in enumerate(window_counts)}
        if lecam is not None:
            tensors.update({f"lecam.{k}": v for k, v in lecam.state_dict().items()})
        trainer_state = {"scheduler": sched.state_dict(), "data": stream.state_dict(),
                         "scheduler_disc": sched_d.state_dict() if sched_d is not None else None,
                         "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
                         "recipe": rec.to_dict()}
        save_checkpoint(accelerator, out, at, parts | {"tensors": tensors}, trainer_state, rec.train.keep_last)

    # ---- the loop ----
    sums: dict[str, float] = {}
    n_sums = 0
    last_log: dict[str, float] = {}
    stopped = False
    try:
        while step < rec.train.max_steps:
            gan_on = disc is not None and step >= gcfg.start
            with accelerator.accumulate(*([model, disc] if disc is not None else [model])):
                batch = stream.next()
                captions = None
                if isinstance(batch, (tuple, list)):  # data.captions: (images, captions)
                    batch, captions = batch
                images = batch.to(device, non_blocking=True)
                out_step: StepOutput = (adapter.forward(model, raw, images, rec) if captions is None else
                                        adapter.forward(model, raw, images, rec, captions=list(captions)))
                terms, nll = _generator_terms(rec, out_step, images, pixel, lpips, convnext, accelerator, tap,
                                              quantizers)
                total = sum(terms.values()) if terms else images.new_zeros(())
                logits_fake = None
                if gan_on and out_step.pixel_losses:
                    for p in d_params:  # the generator's pass through D: not via DDP, no D gradients
                        p.requires_grad_(False)
                    with accelerator.autocast():
                        logits_fake = disc_raw(out_step.recon)
                    for p in d_params:
                        p.requires_grad_(True)
                    g = hinge_g_loss(logits_fake)
                    w = (adaptive_gan_weight(nll, g, last_layer, gcfg.adaptive_min, gcfg.adaptive_max)
                         if gcfg.adaptive and last_layer is not None and torch.is_tensor(nll) else
                         torch.ones((), device=device))
                    terms["gan_g"] = gcfg.weight * w * g
                    total = total + terms["gan_g"]
                    terms["gan_adaptive_weight"] = w.detach()
                accelerator.backward(total)
                if accelerator.sync_gradients and rec.optim.grad_clip:
                    accelerator.clip_grad_norm_([p for p in raw.parameters() if p.requires_grad], rec.optim.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if gan_on and out_step.pixel_losses:
                    with accelerator.autocast():
                        real = disc(images)
                        fake = disc(out_step.recon.detach())
                    d_loss = hinge_d_loss(real, fake)
                    terms["d"] = d_loss.detach()
                    if lecam is not None:
                        reg = lecam(real, fake)
                        d_loss = d_loss + gcfg.lecam * reg
                        terms["lecam"] = reg.detach()
                        lecam.update(real.detach(), fake.detach())
                    accelerator.backward(d_loss)
                    if accelerator.sync_gradients and rec.optim.grad_clip:
                        accelerator.clip_grad_norm_(d_params, rec.optim.grad_clip)
                    opt_d.step()
                    opt_d.zero_grad(set_to_none=True)
            # ---- bookkeeping of this micro-batch ----
            terms["total"] = total.detach()
            for k, v in terms.items():
                name = k if k == "gan_adaptive_weight" else f"loss/{k}"
                sums[name] = sums.get(name, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            if out_step.recon is not None:
                mse = (out_step.recon.detach().float().clamp(0, 1) - images).pow(2).flatten(1).mean(1)
                sums["psnr"] = sums.get("psnr", 0.0) + float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())
            for k, v in out_step.logs.items():
                sums[k] = sums.get(k, 0.0) + v
            n_sums += 1
            if out_step.indices is not None:
                idx = out_step.indices.detach().reshape(-1).cpu()
                c = torch.bincount(idx, minlength=usage_size).double()
                window_counts[0] += c
                log_counts[0] += c
            if not accelerator.sync_gradients:
                continue

            # ---- one optimizer step done ----
            sched.step()
            if sched_d is not None:
                with warnings.catch_warnings():  # before its start the discriminator has not stepped: expected
                    warnings.simplefilter("ignore", UserWarning)
                    sched_d.step()
            step += 1
            if ema is not None:
                ema.update(raw)
            restarted = 0
            if rec.train.restart_dead_codes and quantizers and step % rec.train.restart_every == 0:
                restarted = _restart_dead_codes(quantizers, tap, window_counts, rec.train.restart_threshold)
                window_counts = [torch.zeros_like(c) for c in window_counts]
            if step % rec.train.log_every == 0 or step == rec.train.max_steps:
                logs = {k: v / n_sums for k, v in sums.items()}
                logs["lr"] = sched.get_last_lr()[0]
                if log_counts[0].sum() > 0 or world > 1:
                    logs.update(_usage(_all_reduce(log_counts[0].clone().to(device)).cpu()))
                if restarted:
                    logs["codebook/restarted"] = restarted
                logs = _mean_over_processes(logs, device)
                logger.log(step, logs)
                last_log = logs
                sums, n_sums = {}, 0
                log_counts = [torch.zeros_like(c) for c in log_counts]
            if callback is not None and callback(step, last_log):
                stopped = True
                break
            if step % rec.train.save_every == 0 or step == rec.train.max_steps:
                save(step)
    finally:
        tap.close()
        if rec.train.threads:
            torch.set_num_threads(threads_before)

    model_dir = None
    if not stopped:
        model_dir = _export(accelerator, rec, model, ema, out)
        if main:
            logger.echo(f"done: step {step}; model in {model_dir} (zoo.load('{model_dir}'))")
            if stream.dataset.skipped:
                log.warning("%d unreadable training image(s) were skipped", len(stream.dataset.skipped))
    logger.close()
    accelerator.wait_for_everyone()
    _release(accelerator)
    return TrainResult(out, step, model_dir, last_log)


# ---------------------------------------------------------------------------------------------------------------
def _generator_terms(rec: Recipe, o: StepOutput, images: Tensor, pixel: PixelLoss, lpips: nn.Module | None,
                     convnext: nn.Module | None, accelerator: Any, tap: _QuantizerTap,
                     quantizers: list[nn.Module]) -> tuple[dict[str, Tensor], Tensor | float]:
    """Weighted generator terms and their reconstruction part (the NLL of the adaptive GAN weight)."""
    terms: dict[str, Tensor] = {}
    nll: Tensor | float = 0.0
    if o.pixel_losses and o.recon is not None:
        for k, v in pixel(o.recon, images).items():
            terms[k] = getattr(rec.loss, k) * v
        with accelerator.autocast():
            if lpips is not None:
                terms["lpips"] = rec.loss.lpips * lpips(o.recon, images).mean()
            if convnext is not None:
                terms["convnext"] = rec.loss.convnext * convnext(o.recon, images)
        nll = sum(terms.values()) if terms else 0.0
    if rec.loss.quantizer and o.quantizer is not None:
        terms["quantizer"] = rec.loss.quantizer * o.quantizer.loss
    if rec.loss.entropy and quantizers and tap.inputs[0] is not None:
        q = quantizers[0]
        z = tap.inputs[0].float().reshape(-1, q.dim)
        if getattr(q, "l2_norm", False):
            z = torch.nn.functional.normalize(z, dim=-1)
        terms["entropy"] = rec.loss.entropy * entropy_loss(z, q.codebook(), rec.loss.entropy_temperature)
    terms.update(o.losses)
    return terms, nll


@torch.no_grad()
def _restart_dead_codes(quantizers: list[nn.Module], tap: _QuantizerTap, counts: list[Tensor],
                        threshold: float) -> int:
    """Dead codes (used < threshold times in the window, over all processes) take random recent encoder outputs.

    Rank 0 draws the replacements and broadcasts the codebook, so every process keeps identical weights.
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    restarted = 0
    for q, z, c in zip(quantizers, tap.inputs, counts):
        if z is None:
            continue
        c = _all_reduce(c.clone().to(z.device))
        n = q.restart_dead_codes(z.detach().float(), c, threshold)
        if distributed:
            torch.distributed.broadcast(q.embedding.weight.data, 0)
            n_t = torch.tensor([n], device=z.device)
            torch.distributed.broadcast(n_t, 0)
            n = int(n_t)
        restarted += n
    return restarted


def _mean_over_processes(logs: dict[str, float], device: torch.device) -> dict[str, float]:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return logs
    keys = sorted(k for k in logs if not k.startswith("codebook/"))
    t = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    t /= torch.distributed.get_world_size()
    return {**logs, **dict(zip(keys, t.tolist()))}


def _export(accelerator: Any, rec: Recipe, model: nn.Module, ema: EMA | None, out: Path) -> Path:
    """Write ``<output>/model`` (config.json + model.safetensors; EMA weights when kept): ``zoo.load`` reads it."""
    from ..loading import save_pretrained

    raw = accelerator.unwrap_model(model)
    state = accelerator.get_state_dict(model)  # the full state dict (gathered on rank 0 under FSDP)
    target = out / "model"
    if accelerator.is_main_process:
        clean = copy.deepcopy(raw).cpu()
        clean.load_state_dict({k: v.cpu() for k, v in state.items()}, strict=True)
        if ema is not None and rec.train.export == "ema":
            ema.copy_to(clean)
        clean.name = None
        save_pretrained(clean.eval(), target, extra={"trained_with": {"recipe": rec.to_dict()}})
    accelerator.wait_for_everyone()
    return target


def _seed_all(seed: int) -> None:
    """accelerate's `set_seed` (random, numpy, torch and every accelerator's generators); numpy takes < 2**32."""
    from accelerate.utils import set_seed

    set_seed(seed % 2 ** 32)


def _release(accelerator: Any) -> None:
    """Tear down the process group we ran in (without it, torchrun on CPU can abort at exit)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() and accelerator.num_processes > 1:
        torch.distributed.destroy_process_group()
    _reset_accelerate_state()


def _reset_accelerate_state() -> None:
    """accelerate keeps one process-wide state; clear it so the next `train` in this process sets its own."""
    from accelerate.state import AcceleratorState, GradientState

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    AcceleratorState._reset_state(reset_partial_state=not distributed)
    GradientState._reset_state()


def _write_recipe(rec: Recipe, path: Path) -> None:
    import yaml

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(rec.to_dict(), sort_keys=False))
    os.replace(tmp, path)


__all__ = ["train", "TrainResult"]
