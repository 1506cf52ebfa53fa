"""Transfer learning: a backbone that gives pooled features, a new head on them, and what trains.

`model.finetune` says what trains (the names Keras, fastai and Lightning users know):
  all       every layer (the default)
  frozen    only the head; the backbone, batch-norm statistics included, stays in inference mode
            (Keras' `trainable = False` with `training=False`: frozen weights with updating statistics
            is the classic pitfall)
  last:N    the head and the backbone's last N stages (the stages of timm's group_matcher, else the
            blocks of the top-level sequences); the others stay frozen and in inference mode
  norm      the head and the backbone's normalisation layers (scale, shift and statistics)
  gradual   frozen for `unfreeze_epoch` epochs, then every layer
`backbone_lr` multiplies the backbone's learning rate (default 0.1 for gradual, else 1) and
`layer_decay` scales it down stage by stage towards the input (timm's layer-wise decay).
`model.head` is `linear` or the hidden widths of a new head after global average pooling
([1024, 512]), with `head_activation` and `head_dropout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .activations import ACTIVATIONS, make_activation

TRANSFER_OPTIONS = ("head", "head_activation", "head_dropout", "finetune", "unfreeze_epoch", "backbone_lr",
                    "layer_decay")
FINETUNE_MODES = ("all", "frozen", "last:N", "norm", "gradual")
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
MAX_HEAD_LAYERS, MAX_HEAD_WIDTH = 8, 65_536
MAX_HEAD_PARAMS = 100_000_000  # a larger head is a typo or a hostile model.json (it would need gigabytes)


@dataclass(frozen=True)
class TransferPlan:
    """The validated transfer options of one model."""

    head: tuple[int, ...] = ()  # hidden widths; () is a linear head
    head_activation: str = "relu"
    head_dropout: float = 0.0
    finetune: str = "all"  # all | frozen | last | norm | gradual
    last_stages: int = 0
    unfreeze_epoch: int = 1
    backbone_lr: float = 1.0
    layer_decay: float | None = None


def transfer_plan(options: dict, owner: str) -> TransferPlan | None:
    """The TransferPlan the options ask for; None when they set neither head nor finetune."""
    given = {k: _number(options[k]) if k in ("head_dropout", "backbone_lr", "layer_decay") else options[k]
             for k in TRANSFER_OPTIONS if options.get(k) is not None}
    if "head" not in given and "finetune" not in given:
        if given:
            raise ConfigError(f"model {owner!r}: {', '.join(given)} need model.head or model.finetune beside them")
        return None
    head = given.get("head", "linear")
    if head == "linear":
        widths = ()
    elif isinstance(head, list) and 0 < len(head) <= MAX_HEAD_LAYERS and all(
            isinstance(w, int) and not isinstance(w, bool) and 0 < w <= MAX_HEAD_WIDTH for w in head):
        widths = tuple(head)
    else:
        raise ConfigError(f"model {owner!r}: head must be 'linear' or a list of up to {MAX_HEAD_LAYERS} hidden widths "
                          f"(e.g. [1024, 512]), got {head!r}")
    activation = given.get("head_activation", "relu")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"model {owner!r}: head_activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    dropout = given.get("head_dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise ConfigError(f"model {owner!r}: head_dropout must be a number from 0 to below 1, got {dropout!r}")
    mode, last = _finetune_mode(given.get("finetune", "all"), owner)
    unfreeze = given.get("unfreeze_epoch", 1)
    if not isinstance(unfreeze, int) or isinstance(unfreeze, bool) or unfreeze < 1:
        raise ConfigError(f"model {owner!r}: unfreeze_epoch must be a whole number of epochs >= 1, got {unfreeze!r}")
    if "unfreeze_epoch" in given and mode != "gradual":
        raise ConfigError(f"model {owner!r}: unfreeze_epoch applies to finetune=gradual only (finetune is {mode!r})")
    if mode == "frozen" and {"backbone_lr", "layer_decay"} & set(given):
        raise ConfigError(f"model {owner!r}: backbone_lr and layer_decay set the rate of a backbone that trains; "
                          f"with finetune=frozen it does not: drop them")
    backbone_lr = given.get("backbone_lr", 0.1 if mode == "gradual" else 1.0)
    decay = given.get("layer_decay")
    for key, value in (("backbone_lr", backbone_lr), ("layer_decay", decay)):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                  or not 0 < value <= 10):
            raise ConfigError(f"model {owner!r}: {key} must be a positive multiplier (e.g. 0.1), got {value!r}")
    return TransferPlan(widths, activation, float(dropout), mode, last, unfreeze, float(backbone_lr),
                        None if decay is None else float(decay))


def _number(value):
    """A number written as text (YAML reads 1e-1 as a string) as the number it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _finetune_mode(value, owner: str) -> tuple[str, int]:
    if value in ("all", "frozen", "norm", "gradual"):
        return value, 0
    if isinstance(value, str) and value.startswith("last:") and value[5:].isdigit() and int(value[5:]) > 0:
        return "last", int(value[5:])
    raise ConfigError(f"model {owner!r}: finetune must be one of all, frozen, last:N (N stages, e.g. last:2), norm, "
                      f"gradual; got {value!r}")


def make_head(num_features: int, widths: tuple[int, ...], num_classes: int, activation: str, dropout: float):
    sides = [num_features, *widths, num_classes]
    params = sum(a * b + b for a, b in zip(sides, sides[1:]))
    if params > MAX_HEAD_PARAMS:
        raise ConfigError(f"a head of widths {list(widths)} on {num_features} features would have {params:,} "
                          f"parameters (at most {MAX_HEAD_PARAMS:,}); choose narrower widths")
    layers: list[nn.Module] = []
    width = num_features
    for hidden in widths:
        layers += [nn.Linear(width, hidden), make_activation(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = hidden
    if dropout and not widths:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def classifier_name(module: nn.Module) -> str | None:
    """The name of the model's final classifier layer (its last Linear), None when it has none."""
    if hasattr(module, "get_classifier") and hasattr(module, "reset_classifier"):  # timm
        head = module.get_classifier()
        for name, child in module.named_modules():
            if child is head and isinstance(child, nn.Linear):
                return name
    last = None
    for name, child in module.named_modules():
        if isinstance(child, nn.Linear):
            last = name
    return last


def split_backbone(module: nn.Module, owner: str) -> tuple[nn.Module, int]:
    """(the model turned into a backbone giving pooled features, their width): its classifier becomes
    an identity (timm: reset_classifier(0), which keeps the global pooling)."""
    if hasattr(module, "reset_classifier") and hasattr(module, "num_features"):
        module.reset_classifier(0)
        return module, int(module.num_features)
    name = classifier_name(module)
    if name is None:
        raise ConfigError(f"model {owner!r} has no linear classifier on pooled features to replace (its output comes "
                          f"from a convolution), so it takes no head or finetune option; choose another model or "
                          f"train it whole")
    parent_name, _, leaf = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    width = getattr(parent, leaf).in_features
    setattr(parent, leaf, nn.Identity())
    return module, int(width)


def backbone_stages(backbone: nn.Module) -> list[list[str]]:
    """The backbone's parameter names grouped in stages, input to output."""
    if hasattr(backbone, "group_matcher"):
        from timm.models import group_parameters

        try:
            groups = group_parameters(backbone, backbone.group_matcher(coarse=True))
            stages = [list(names) for _, names in sorted(groups.items())]
            if len(stages) > 1:
                return [s for s in stages if s]
        except Exception:  # noqa: BLE001 - fall back to the module order below
            pass
    stages = []
    for name, child in backbone.named_children():
        parts = list(child.named_children()) if isinstance(child, nn.Sequential) else [("", child)]
        for part, sub in parts:
            prefix = f"{name}.{part}." if part else f"{name}."
            names = [prefix + n for n, _ in sub.named_parameters()]
            if names:
                stages.append(names)
    loose = [n for n, _ in backbone.named_parameters(recurse=False)]
    return ([loose] if loose else []) + stages


class TransferNet(nn.Module):
    """images -> backbone (pooled features) -> head -> logits, with the plan saying what trains."""

    def __init__(self, backbone: nn.Module, num_features: int, head: nn.Module, plan: TransferPlan):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.num_features = num_features
        self.plan = plan
        self.stages = backbone_stages(backbone)
        if plan.finetune == "last" and plan.last_stages >= len(self.stages):
            raise ConfigError(f"finetune=last:{plan.last_stages} asks for {plan.last_stages} of the backbone's "
                              f"{len(self.stages)} stages: that is every layer, finetune=all; choose N below "
                              f"{len(self.stages)}")
        if plan.finetune == "norm" and not any(isinstance(m, NORM_TYPES) for m in backbone.modules()):
            raise ConfigError("finetune=norm trains the normalisation layers, and this backbone has none; choose "
                              "frozen or last:N")
        self._frozen: list[nn.Module] = []
        self.set_epoch(1)

    def forward(self, x):
        return self.head(self.backbone(x))

    def frozen_at(self, epoch: int) -> bool:
        """Whether the whole backbone is frozen during `epoch` (1-based)."""
        return self.plan.finetune == "frozen" or (self.plan.finetune == "gradual" and epoch <= self.plan.unfreeze_epoch)

    @property
    def always_frozen(self) -> bool:
        return self.plan.finetune == "frozen"

    def set_epoch(self, epoch: int) -> None:
        """Set what trains during `epoch` (a pure function of it, so a resumed run continues alike)."""
        plan, params = self.plan, dict(self.backbone.named_parameters())
        if self.frozen_at(epoch):
            trainable: set[str] = set()
        elif plan.finetune == "last":
            trainable = {n for stage in self.stages[-plan.last_stages:] for n in stage}
        elif plan.finetune == "norm":
            trainable = {f"{m}.{p}" if m else p for m, mod in self.backbone.named_modules()
                         if isinstance(mod, NORM_TYPES) for p, _ in mod.named_parameters(recurse=False)}
        else:
            trainable = set(params)
        for name, param in params.items():
            param.requires_grad_(name in trainable)
        # a module whose own parameters are all frozen runs in inference mode (batch-norm statistics fixed)
        self._frozen = [m for m in self.backbone.modules()
                        if any(True for _ in m.parameters(recurse=False))
                        and not any(p.requires_grad for p in m.parameters(recurse=False))]
        if self.frozen_at(epoch):
            self._frozen = [self.backbone]
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for module in self._frozen:
                module.eval()
        return self

    def param_groups(self) -> list[dict]:
        """Optimizer groups: the head at the base rate, the backbone's stages at backbone_lr, decayed by
        layer_decay per stage towards the input. Frozen parameters are included (gradual unfreezes them)."""
        plan = self.plan
        groups = [{"params": list(self.head.parameters()), "lr_mult": 1.0}]
        params = dict(self.backbone.named_parameters())
        seen: set[str] = set()
        count = len(self.stages)
        for index, stage in enumerate(self.stages):
            decay = plan.layer_decay ** (count - index) if plan.layer_decay else 1.0
            names = [n for n in stage if n in params and n not in seen]
            seen.update(names)
            if names:
                groups.append({"params": [params[n] for n in names], "lr_mult": plan.backbone_lr * decay})
        rest = [p for n, p in params.items() if n not in seen]
        if rest:
            groups.append({"params": rest, "lr_mult": plan.backbone_lr})
        return groups


@dataclass(frozen=True)
class FeatureInput:
    """The input 'transform' of a head trained on a frozen backbone's cached features: they go in as
    they are (augmentation never reaches them: with augmentation on, the backbone runs every step)."""

    channels_last: bool = False
    takes_features: bool = True

    def __call__(self, features, augment=None):
        return features


def make_transfer(module: nn.Module, num_classes: int, plan: TransferPlan, owner: str) -> TransferNet:
    backbone, width = split_backbone(module, owner)
    head = make_head(width, plan.head, num_classes, plan.head_activation, plan.head_dropout)
    weight = next(backbone.parameters(), None)
    if weight is not None:
        head = head.to(device=weight.device)
    return TransferNet(backbone, width, head, plan)


def parameter_counts(module: nn.Module) -> dict:
    """{'params', 'trainable_params', 'frozen_params'} as they stand now."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"params": total, "trainable_params": trainable, "frozen_params": total - trainable}


@torch.inference_mode()
def extract_features(backbone: nn.Module, transform, images, device, amp: str, batch_size: int = 256,
                     progress=None):
    """Pooled features (float32, on `device`) of uint8 images, batched, in inference mode."""
    was_training = backbone.training
    backbone.eval()
    outputs = []
    try:
        for start in range(0, len(images), batch_size):
            chunk = torch.as_tensor(images[start:start + batch_size]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
                outputs.append(backbone(transform(chunk)).float())
            if progress is not None:
                progress(min(start + batch_size, len(images)))
    finally:
        backbone.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty((0, 0), device=device)
