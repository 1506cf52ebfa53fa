"""Models: create_model(name, num_classes, in_chans, input_size, **options) -> BuiltModel.

Curated names (list_models()) are our own models (lenet5, rescnn) and short names for the zoo
architectures of the reference study's survey; 'timm:NAME' and 'tv:NAME' reach every timm and
torchvision classifier. Each built model comes with its input transform (uint8 images -> the
model's input: channels, pad / resize, normalisation) and a JSON-able spec that rebuilds both.

Importing this package imports neither torch nor timm; building a model does.
"""

from __future__ import annotations

from .activations import ACTIVATIONS, make_activation
from .catalog import MODELS, ModelEntry, register_model
from .factory import BuiltModel, create_model, list_models, model_from_spec, resolve
from .policy import POLICIES, InputLimits, plan_input
from .transform import InputTransform

_PROFILE = ("ModelProfile", "LayerRow", "count_params", "count_macs", "profile_module", "profile_model",
            "layer_table", "format_table")


def __getattr__(name: str):
    if name in _PROFILE:  # profile.py is torch-only; load it when asked for
        from . import profile

        return getattr(profile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS", "MODELS", "POLICIES", "BuiltModel", "InputLimits", "InputTransform", "ModelEntry",
    "create_model", "list_models", "make_activation", "model_from_spec", "plan_input", "register_model", "resolve",
    *_PROFILE,
]
