"""Model profiles: parameters, MACs at an input size, weight size, and a Keras-like layer table.

Everything runs on the meta device: a module's parameters and buffers are swapped for meta
tensors of the same shapes (torch.func.functional_call), so counting a 100M-parameter model
allocates nothing, computes nothing and leaves the module untouched. MACs are what
torch.utils.flop_counter counts (convolutions and matrix products, i.e. conv and linear layers
and attention), halved: a multiply-accumulate is two FLOPs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelProfile:
    params: int  # distinct parameters
    trainable_params: int
    macs: int  # multiply-accumulates of one forward pass on one image of input_shape
    size_mb: float  # bytes of the state dict (parameters and buffers) / 1e6
    input_shape: tuple[int, int, int]  # (channels, height, width) the module sees


@dataclass(frozen=True)
class LayerRow:
    name: str  # qualified module name, e.g. 'stages.1.0.conv1'
    type: str  # class name, e.g. 'Conv2d'
    output_shape: tuple[int, ...] | None  # for a batch of one; None if the forward never called it
    params: int


def count_params(module, trainable_only: bool = False) -> int:
    """Distinct parameters (a tied weight counts once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def state_bytes(module) -> int:
    tensors = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _meta_forward(module, input_shape: Sequence[int]):
    """Run `module` on a meta batch of one without touching its weights; returns the output."""
    import torch
    from torch.func import functional_call

    swapped = {name: torch.empty_like(t, device="meta")
               for name, t in (*module.named_parameters(), *module.named_buffers())}
    was_training = module.training
    module.eval()  # batch norm refuses a batch of one in training mode
    try:
        with torch.no_grad():
            return functional_call(module, swapped, (torch.empty(1, *input_shape, device="meta"),), strict=False)
    finally:
        module.train(was_training)


def count_macs(module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass for one image of `input_shape` (channels, height, width)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _meta_forward(module, input_shape)
    return counter.get_total_flops() // 2


def profile_module(module, input_shape: Sequence[int]) -> ModelProfile:
    return ModelProfile(
        params=count_params(module),
        trainable_params=count_params(module, trainable_only=True),
        macs=count_macs(module, input_shape),
        size_mb=state_bytes(module) / 1e6,
        input_shape=tuple(input_shape),
    )


def profile_model(name: str, num_classes: int, in_chans: int = 1, input_size=28, **options) -> ModelProfile:
    """Profile a model by name, built on the meta device (pretrained weights are not loaded)."""
    from .factory import create_model

    options = {k: v for k, v in options.items() if k not in ("pretrained", "weights")}
    built = create_model(name, num_classes, in_chans, input_size, device="meta", **options)
    return profile_module(built.module, built.input_shape)


def layer_table(module, input_shape: Sequence[int], depth: int | None = None) -> list[LayerRow]:
    """One row per layer in the order the forward pass runs them: leaf modules, or the modules
    `depth` levels down (their parameters summed). Shapes are for a batch of one."""
    chosen = [(name, m) for name, m in module.named_modules() if name and _at_depth(name, m, depth)]
    outputs: dict[str, tuple[int, ...] | None] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            if name not in outputs:
                outputs[name] = _shape_of(output)
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in chosen]
    try:
        _meta_forward(module, input_shape)
    finally:
        for handle in handles:
            handle.remove()
    rows = {name: LayerRow(name, type(m).__name__, outputs.get(name), count_params(m)) for name, m in chosen}
    ran = [rows[name] for name in outputs]  # dicts keep insertion order: the execution order
    return ran + [row for name, row in rows.items() if name not in outputs]


def _at_depth(name: str, module, depth: int | None) -> bool:
    level = name.count(".") + 1
    is_leaf = next(module.children(), None) is None
    return is_leaf and (depth is None or level <= depth) or level == depth


def _shape_of(output) -> tuple[int, ...] | None:
    if hasattr(output, "shape"):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)) and output:
        return _shape_of(output[0])
    return None


def format_table(rows: Sequence[LayerRow], profile: ModelProfile | None = None) -> str:
    """The layer table as text, like Keras' model.summary(), with totals under it."""
    header = ("Layer", "Type", "Output shape", "Params")
    body = [(r.name, r.type, "unused" if r.output_shape is None else str(list(r.output_shape)), f"{r.params:,}")
            for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(4)]

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    out = [line(header), rule, *map(line, body), rule]
    if profile is not None:
        out += [
            f"Total params: {profile.params:,} (trainable {profile.trainable_params:,})",
            f"MACs per image of {'x'.join(map(str, profile.input_shape))}: {profile.macs:,}",
            f"Weight size: {profile.size_mb:.2f} MB",
        ]
    return "\n".join(out)
