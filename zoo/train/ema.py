"""Exponential moving average of a model's weights (the weights most releases ship)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    """``shadow = d * shadow + (1 - d) * param`` after every optimizer step; buffers are copied as they are.

    With `warmup`, ``d = min(decay, (1 + n) / (10 + n))`` at the n-th update (n from 0), as diffusers' `EMAModel`:
    the average forgets the random initialisation within the first steps instead of after ~1/(1 - decay) steps
    (0.999 kept 13% of the initial weights after 2000 steps). Without it, ``d = decay`` from the start.

    Holds fp32 copies on the model's device. `state_dict` / `load_state_dict` make it checkpointable (accelerate's
    ``register_for_checkpointing``); `copy_to` writes the averaged weights into a model of the same layout.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().float().clone() for k, v in model.state_dict().items()
                                          if v.is_floating_point()}
        self._trainable = {k for k, p in model.named_parameters() if p.requires_grad}

    def current_decay(self) -> float:
        """The decay the next `update` applies."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.num_updates += 1
        for k, v in model.state_dict().items():
            if k not in self.shadow:
                continue
            if k in self._trainable:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - decay)
            else:  # frozen weights and buffers (BN statistics, EMA codebooks) follow the model
                self.shadow[k].copy_(v.detach())

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        state = model.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v.to(state[k].dtype))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}")
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
