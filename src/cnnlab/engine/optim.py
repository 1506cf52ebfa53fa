"""Optimizers and learning-rate schedules by name (torch's implementations; fused/foreach where it pays).

Both are registries, so one call adds a choice that `train.optimizer` / `train.schedule` then accept:

    OPTIMIZERS.register("asgd", lambda params, lr, weight_decay, momentum: torch.optim.ASGD(
        params, lr=lr, weight_decay=weight_decay))
    SCHEDULES.register("linear", lambda progress, **_: 1 - progress)

torch is imported when an optimizer is built, not with this module: the config validates names from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..registry import Registry

# name -> factory(params, lr, weight_decay, momentum) -> torch.optim.Optimizer
OPTIMIZERS: Registry[Callable] = Registry("optimizer")
# name -> factor(progress, step, step_every, gamma) -> the multiplier of the base rate after warm-up;
# progress runs from 0 to 1 over the steps after warm-up
SCHEDULES: Registry[Callable] = Registry("schedule")


def _torch_optimizer(class_name: str, fused: bool) -> Callable:
    """A factory of torch.optim.<class_name>; fused: torch has a single-kernel CPU and CUDA version of it
    (the others use the multi-tensor path)."""

    def make(params, lr, weight_decay: float = 0.0, momentum: float = 0.9):
        import torch

        speed = {"fused": True} if fused else {"foreach": True}
        return getattr(torch.optim, class_name)(params, lr=lr, weight_decay=weight_decay, **speed)

    return make


def _sgd(nesterov: bool) -> Callable:
    def make(params, lr, weight_decay: float = 0.0, momentum: float = 0.9):
        import torch

        # Nesterov needs a momentum: 0 means the usual 0.9 there
        return torch.optim.SGD(params, lr=lr, momentum=momentum or (0.9 if nesterov else 0.0), nesterov=nesterov,
                               weight_decay=weight_decay, fused=True)

    return make


OPTIMIZERS.register("sgd", _sgd(nesterov=False))
OPTIMIZERS.register("sgd_nesterov", _sgd(nesterov=True))
OPTIMIZERS.register("adagrad", _torch_optimizer("Adagrad", fused=True))
OPTIMIZERS.register("rmsprop", _torch_optimizer("RMSprop", fused=False))
OPTIMIZERS.register("adam", _torch_optimizer("Adam", fused=True))
OPTIMIZERS.register("adamw", _torch_optimizer("AdamW", fused=True))
OPTIMIZERS.register("adamax", _torch_optimizer("Adamax", fused=False))
OPTIMIZERS.register("nadam", _torch_optimizer("NAdam", fused=False))


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9,
                   lr_as_tensor: bool = False):
    """params: parameters, or groups of them (dicts; an `lr_mult` key scales the group's rate).
    lr_as_tensor: hold the learning rate in a 0-d tensor, so a compiled step that reads it is not
    recompiled each time the schedule changes it."""
    factory = OPTIMIZERS.get(name)
    if lr_as_tensor:
        import torch

        lr = torch.tensor(float(lr), dtype=torch.float64)
        params = list(params)
        if params and isinstance(params[0], dict):  # each group its own tensor: the trainer sets them apart
            params = [{**group, "lr": torch.tensor(float(lr), dtype=torch.float64)} for group in params]
    return factory(params, lr=lr, weight_decay=weight_decay, momentum=momentum)


@SCHEDULES.register("none")
def _constant(progress: float, **_) -> float:
    return 1.0


@SCHEDULES.register("cosine")
def _cosine(progress: float, **_) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@SCHEDULES.register("onecycle")
def _onecycle(progress: float, **_) -> float:
    """Linear up for 30 %, cosine down to 1/1000 (the shape of Smith's 1cycle)."""
    if progress < 0.3:
        return 0.04 + 0.96 * progress / 0.3
    return 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * (progress - 0.3) / 0.7))


@SCHEDULES.register("step")
def _step(progress: float, step: int, step_every: int, gamma: float, **_) -> float:
    return gamma ** (step // max(1, step_every))


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0, step_every: int = 1,
              gamma: float = 0.1) -> float:
    """The multiplier of the base learning rate after `step` optimizer steps (a pure function, so a
    resumed run continues on exactly the same curve)."""
    factor = SCHEDULES.get(schedule)
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return factor(progress=progress, step=step, step_every=step_every, gamma=gamma)
