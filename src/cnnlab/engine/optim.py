"""Optimizers and learning-rate schedules by name (torch's implementations; fused/foreach where it pays)."""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "sgd_nesterov", "adagrad", "rmsprop", "adam", "adamw", "adamax", "nadam")
SCHEDULES = ("none", "cosine", "onecycle", "step")


# torch has single-kernel ("fused") CPU and CUDA versions of these; the others use the multi-tensor path
FUSED = ("sgd", "sgd_nesterov", "adagrad", "adam", "adamw")


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                   lr_as_tensor: bool = False):
    """params: parameters, or groups of them (dicts; an `lr_mult` key scales the group's rate).
    lr_as_tensor: hold the learning rate in a 0-d tensor, so a compiled step that reads it is not
    recompiled each time the schedule changes it."""
    if lr_as_tensor:
        lr = torch.tensor(float(lr), dtype=torch.float64)
        params = list(params)
        if params and isinstance(params[0], dict):  # each group its own tensor: the trainer sets them apart
            params = [{**group, "lr": torch.tensor(float(lr), dtype=torch.float64)} for group in params]
    speed = {"fused": True} if name in FUSED else {"foreach": True}
    if name in ("sgd", "sgd_nesterov"):
        nesterov = name == "sgd_nesterov"
        return torch.optim.SGD(params, lr=lr, momentum=momentum or (0.9 if nesterov else 0.0), nesterov=nesterov,
                               weight_decay=weight_decay, **speed)
    adaptive = {"adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
                "adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax, "nadam": torch.optim.NAdam}
    if name not in adaptive:
        raise ConfigError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}. Got {name!r} instead.")
    return adaptive[name](params, lr=lr, weight_decay=weight_decay, **speed)


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0, step_every: int = 1,
              gamma: float = 0.1) -> float:
    """The multiplier of the base learning rate after `step` optimizer steps (a pure function, so a
    resumed run continues on exactly the same curve)."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"train.schedule must be one of {', '.join(SCHEDULES)}. Got {schedule!r} instead.")
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "onecycle":  # linear up for 30 %, cosine down to 1/1000 (the shape of Smith's 1cycle)
        if progress < 0.3:
            return 0.04 + 0.96 * progress / 0.3
        return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * (progress - 0.3) / 0.7))
    if schedule == "step":
        return gamma ** (step // max(1, step_every))
    return 1.0


def make_scheduler(optimizer, schedule: str, total_steps: int, warmup_steps: int = 0, step_every: int = 1,
                   gamma: float = 0.1):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(schedule, step, total_steps, warmup_steps, step_every, gamma))
