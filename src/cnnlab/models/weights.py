"""Pretrained weights: never fetched unless asked for, read from a local file when there is one,
and adapted to the model's input channels and classes.

A request for `pretrained=True` looks, in order, at `weights=PATH`, then at
`<weights dir>/<timm|tv>/<name>.safetensors` (the weights dir is $CNNLAB_WEIGHTS or the user's
cache folder), then downloads through timm / torchvision unless CNNLAB_OFFLINE is set, in which
case it fails with a message saying where to put the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, DownloadError


def weights_dir() -> Path:
    env = os.environ.get("CNNLAB_WEIGHTS")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cnnlab")) / "weights"


def default_weights_path(source: str, name: str) -> Path:
    return weights_dir() / source / f"{name}.safetensors"


def offline() -> bool:
    return os.environ.get("CNNLAB_OFFLINE", "").lower() not in ("", "0", "false", "no")


def local_weights(source: str, name: str, weights: str | os.PathLike | None) -> Path | None:
    """The local file to load, None when the weights must be downloaded (raises when offline)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"weights file {path} does not exist (the 'weights' option of {source}:{name})")
        return path
    path = default_weights_path(source, name)
    if path.is_file():
        return path
    if offline():
        raise DownloadError(
            f"pretrained weights for {source}:{name} are not on this machine and CNNLAB_OFFLINE is set: "
            f"save the model's state dict as {path} (safetensors) or pass weights=PATH"
        )
    return None


def read_state_dict(path: Path) -> dict:
    """Tensors only: safetensors, or a PyTorch file through torch.load(weights_only=True), which refuses
    anything in the pickle but tensors and plain containers (nothing in it is executed)."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ConfigError(f"weights file {path}: not a readable safetensors file ({exc}); check the file") from None
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"weights file {path} holds more than tensors, or is not a PyTorch file ({reason}); "
                          f"cnnlab loads only tensors: save the state dict as safetensors "
                          f"(safetensors.torch.save_file) and pass that file") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"weights file {path} is not a state dict (names to tensors); save the model's "
                          f"state_dict() as safetensors and pass that file")
    return state


def adapt_in_chans(weight, chans: int):
    """A first-conv weight (out, C, kh, kw) turned to take `chans` channels.

    To one channel: the sum over C, so a grey image gives exactly what the same image repeated
    over C channels gave. To more: cycle the channels, scaled by C / chans to keep the activation scale.
    """
    have = weight.shape[1]
    if have == chans:
        return weight
    if chans == 1:
        return weight.sum(dim=1, keepdim=True)
    return weight[:, [i % have for i in range(chans)]] * (have / chans)


def load_adapted(model, state: dict, what: str) -> list[str]:
    """Copy `state` into `model`: first-conv weights are adapted to the model's channels, and the
    classifier (tensors whose class dimension differs) keeps its fresh initialisation.
    Returns the skipped (re-initialised) keys."""
    import torch

    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ConfigError(f"the weights for {what} lack {len(missing)} tensors, e.g. {missing[:3]}: wrong file?")
    merged, skipped = {}, []
    for key, mine in own.items():
        if key not in state:
            continue
        theirs = state[key]
        if theirs.shape != mine.shape and theirs.dim() == 4 and theirs.shape[0] == mine.shape[0] \
                and theirs.shape[2:] == mine.shape[2:]:
            theirs = adapt_in_chans(theirs, mine.shape[1])
        if theirs.shape != mine.shape:
            if theirs.shape[1:] != mine.shape[1:]:
                raise ConfigError(f"the weights for {what} have {key} of shape {tuple(theirs.shape)}, "
                                  f"the model {tuple(mine.shape)}: wrong file?")
            skipped.append(key)  # the classifier for another number of classes
            continue
        merged[key] = theirs
    if len(skipped) > 2:
        raise ConfigError(f"the weights for {what} differ from the model in {skipped[:4]}…: wrong file?")
    with torch.no_grad():
        model.load_state_dict(merged, strict=False)
    return skipped
