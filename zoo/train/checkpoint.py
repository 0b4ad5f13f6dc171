"""Full training state on disk: written into a temporary folder and renamed, so a kill never leaves half a checkpoint.

A checkpoint is ``<output>/checkpoints/step_00001234/`` holding:
  model.safetensors, discriminator.safetensors, ema.safetensors, state.safetensors (LeCam EMAs, usage counts)
  optimizer.pt, optimizer_disc.pt          (optimizer state dicts: tensors and numbers, loaded weights-only)
  rng_{rank}.pt                            (python, numpy, torch and CUDA RNG states of every process, as tensors)
  trainer.json                             (step, data position, schedulers, world size; written last)
Numbering is ours (the optimizer step), so a resumed run keeps saving where it stopped; only the newest
`keep_last` checkpoints are kept, and older ones are deleted only after the new one is complete.
Under FSDP the model and optimizer go through ``accelerator.save_state`` (sharded) inside the same folder.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError

STEP_PREFIX = "step_"
MARKER = "trainer.json"


def checkpoint_dir(output: Path) -> Path:
    return Path(output) / "checkpoints"


def list_checkpoints(output: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (with their trainer.json), oldest first; temporary folders are ignored."""
    root = checkpoint_dir(Path(output))
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX) and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX):]))


def latest_checkpoint(output: str | os.PathLike) -> Path | None:
    found = list_checkpoints(output)
    return found[-1] if found else None


# ---------------------------------------------------------------------------------------------------------------
# RNG states as plain tensors (so they load with weights_only=True)
# ---------------------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": torch.tensor(py_state, dtype=torch.int64), "python_version": py_version,
        "python_gauss": py_gauss, "numpy_name": np_name, "numpy_keys": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy_pos": int(np_pos), "numpy_has_gauss": int(np_has_gauss), "numpy_gauss": float(np_gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    np.random.set_state((state["numpy_name"], state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------------------------
def _save_tensors(tensors: Mapping[str, Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    from ..files import normal_mode

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))
    normal_mode(path)


def _load_tensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"corrupt checkpoint file {path}: {exc}") from None


def _load_pickle(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot load {path} (weights-only): {str(exc).splitlines()[0]}") from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(accelerator: Any, output: Path, step: int, parts: Mapping[str, Any], trainer_state: dict,
                    keep_last: int) -> Path:
    """Write every part into ``.tmp-step_N`` and rename it to ``step_N`` (collective: every process calls it).

    parts: "model", "optimizer" (required), optional "discriminator", "optimizer_disc", "ema" (an EMA), "tensors"
    (a dict of extra state tensors). `trainer_state` must be JSON-ready.
    """
    root = checkpoint_dir(output)
    final = root / f"{STEP_PREFIX}{step:08d}"
    tmp = root / f".tmp-{final.name}"
    main = accelerator.is_main_process
    if main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    fsdp = str(accelerator.distributed_type).endswith("FSDP")
    if fsdp:  # sharded model and optimizer states: accelerate knows how to write them
        accelerator.save_state(str(tmp / "fsdp"), safe_serialization=True)
    torch.save(rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    if main:
        if not fsdp:
            _save_tensors(accelerator.unwrap_model(parts["model"]).state_dict(), tmp / "model.safetensors")
            torch.save(parts["optimizer"].state_dict(), tmp / "optimizer.pt")
            if parts.get("discriminator") is not None:
                _save_tensors(accelerator.unwrap_model(parts["discriminator"]).state_dict(),
                              tmp / "discriminator.safetensors")
                torch.save(parts["optimizer_disc"].state_dict(), tmp / "optimizer_disc.pt")
        if parts.get("ema") is not None:
            ema = parts["ema"]
            _save_tensors(ema.shadow, tmp / "ema.safetensors")
            trainer_state = {**trainer_state, "ema": {"decay": ema.decay, "num_updates": ema.num_updates}}
        if parts.get("tensors"):
            _save_tensors(parts["tensors"], tmp / "state.safetensors")
        state = {**trainer_state, "step": step, "world_size": accelerator.num_processes, "fsdp": fsdp}
        (tmp / MARKER).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")  # last: marks completeness
    accelerator.wait_for_everyone()
    if main:
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if final.exists():  # the same step saved again (a resumed run re-reaching it): replace it whole
            old = root / f".old-{final.name}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
        for old in list_checkpoints(output)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, path: Path, parts: Mapping[str, Any]) -> dict:
    """Restore every part saved by `save_checkpoint`; returns the trainer state (step, data position, ...)."""
    path = Path(path)
    marker = path / MARKER
    if not marker.is_file():
        raise CheckpointError(f"{path} is not a complete training checkpoint (no {MARKER})")
    state = json.loads(marker.read_text())
    if state.get("fsdp"):
        if not str(accelerator.distributed_type).endswith("FSDP"):
            raise CheckpointError(f"{path} was written by an FSDP run; resume it under FSDP (accelerate launch "
                                  "with the same FSDP config)")
        accelerator.load_state(str(path / "fsdp"))
    else:
        _strict_load(accelerator.unwrap_model(parts["model"]), _load_tensors(path / "model.safetensors"), path)
        parts["optimizer"].load_state_dict(_load_pickle(path / "optimizer.pt"))
        if parts.get("discriminator") is not None:
            if not (path / "discriminator.safetensors").is_file():
                raise CheckpointError(f"{path} has no discriminator state but this recipe trains one "
                                      "(loss.gan.weight > 0); resume with the recipe that wrote it")
            _strict_load(accelerator.unwrap_model(parts["discriminator"]),
                         _load_tensors(path / "discriminator.safetensors"), path)
            parts["optimizer_disc"].load_state_dict(_load_pickle(path / "optimizer_disc.pt"))
    if parts.get("ema") is not None:
        if not (path / "ema.safetensors").is_file():
            raise CheckpointError(f"{path} has no EMA weights but this recipe keeps an EMA (train.ema_decay)")
        meta = state.get("ema", {})
        parts["ema"].load_state_dict({"decay": meta.get("decay", parts["ema"].decay),
                                      "num_updates": meta.get("num_updates", 0),
                                      "shadow": _load_tensors(path / "ema.safetensors")})
    if (path / "state.safetensors").is_file():
        state["tensors"] = _load_tensors(path / "state.safetensors")
    rng = path / f"rng_{accelerator.process_index}.pt"
    if rng.is_file():
        set_rng_state(_load_pickle(rng))
        state["rng_restored"] = True
    else:  # more processes than the run that wrote it: a fresh, deterministic stream for the new ones
        torch.manual_seed(int(state["step"]) * 1000 + accelerator.process_index)
        state["rng_restored"] = False
    return state


def _strict_load(module: torch.nn.Module, tensors: dict[str, Tensor], path: Path) -> None:
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    bad = [k for k in set(own) & set(tensors) if tuple(own[k].shape) != tuple(tensors[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(f"{path} does not fit this recipe's model: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, mis-shaped {sorted(bad)[:5]}")
    module.load_state_dict(tensors, strict=True)
