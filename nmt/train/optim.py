"""The optimiser, the learning-rate schedule and gradient clipping, as `optim.*` describes."""

from __future__ import annotations

import math

import torch
from torch import nn

from nmt.config import OptimConfig


def build_optimizer(model: nn.Module, o: OptimConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over every parameter of `model`."""
    kind = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    args = dict(lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    try:  # one fused kernel for all parameters: 5× faster than the default on CPU
        return kind(model.parameters(), fused=True, **args)
    except RuntimeError:  # torch < 2.4 has no fused CPU kernel
        return kind(model.parameters(), **args)


def build_scheduler(optimizer: torch.optim.Optimizer, o: OptimConfig, maximize: bool):
    """`optim.scheduler`: plateau (on the validation metric; `maximize` for BLEU), warmup
    (linear rise, then inverse square root), or None for a constant rate."""
    if o.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max" if maximize else "min",
            factor=o.plateau_factor,
            patience=o.plateau_patience,
            min_lr=o.min_lr,
        )
    if o.scheduler == "warmup":
        warm = max(1, o.warmup_updates)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda n: min((n + 1) / warm, math.sqrt(warm / (n + 1)))
        )
    return None


def clip_gradients(params: list[nn.Parameter], o: OptimConfig) -> float:
    """Clip by `optim.clip_value` (each element), then `optim.clip_norm` (global L2 norm);
    returns the global norm before clipping (inf or nan when any gradient element is)."""
    if o.clip_norm and not o.clip_value:
        return float(torch.nn.utils.clip_grad_norm_(params, o.clip_norm))
    norm = _total_norm(params)
    if o.clip_value:
        torch.nn.utils.clip_grad_value_(params, o.clip_value)
    if o.clip_norm:
        torch.nn.utils.clip_grad_norm_(params, o.clip_norm)
    return norm


def _total_norm(params: list[nn.Parameter]) -> float:
    """The global L2 norm of the gradients (inf or nan when any element is)."""
    norms = [torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


class LossScaling:
    """fp16's dynamic loss scaling (torch.amp.GradScaler: CUDA), which keeps small gradients
    from underflowing; nothing at fp32 or bf16, whose range needs none.

    An update whose scaled gradient overflowed is skipped and the scale halved: a normal
    event at fp16, not a sign of divergence (the trainer does not count it as a bad update).
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true size before clipping."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def overflowed(self, loss_ok: bool, norm: float) -> bool:
        """Whether a non-finite gradient norm was fp16's overflow (skip, halve the scale)."""
        if self.scaler is None or not loss_ok or math.isfinite(norm):
            return False
        self.scaler.update()  # finds the inf the unscale recorded: a smaller scale next time
        return True

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def diverged_message(update: int, limit: int, last: str, saved_update: int | None) -> str:
    """Why training stopped after `limit` non-finite updates in a row, and what to do."""
    saved = (
        f"{last} holds update {saved_update}, the last good state"
        if saved_update is not None
        else "no checkpoint had been saved yet"
    )
    return (
        f"training stopped after update {update}: {limit} updates in a row had a non-finite "
        f"(NaN or inf) loss or gradient (train.max_bad_updates={limit}); {saved}. Lower "
        "optim.lr, set optim.clip_norm, or check the training data"
    )
