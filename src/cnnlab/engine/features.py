"""The feature cache of a frozen backbone: each split's pooled features computed once and kept on disk.

A frozen backbone in inference mode gives the same features on every epoch, so a head trained on
them sees exactly what it would see with the backbone run every step. The cache is keyed by the
backbone's tensors (so by the pretrained file and the seed of a random one), the images' bytes, the
input transform and the precision, and lives in `<data home>/features/`; a damaged or foreign file
is computed again, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import CnnlabError
from ..files import atomic_write
from ..models.transfer import extract_features
from ..models.weights import tensors_sha256
from ..runfolder import images_sha256

FORMAT = 1  # bump when what the key covers changes


def features_dir() -> Path:
    from ..data.cache import data_home

    return data_home() / "features"


class FeatureCache:
    """cache(split_images) -> float32 features on the device; `log` says what was computed or reused."""

    def __init__(self, backbone, transform, device, amp: str, model_spec: dict, width: int, batch_size: int = 256,
                 folder: Path | None = None):
        self.backbone, self.transform, self.device, self.amp = backbone, transform, device, amp
        self.width, self.batch_size = width, batch_size
        self.folder = folder or features_dir()
        # the architecture and its options (activation, pooling, …) change the features as much as the weights do
        self._model_key = {"spec": {k: v for k, v in model_spec.items() if k != "transform"},
                           "backbone": tensors_sha256(backbone.state_dict())}
        self.log: list[dict] = []

    def key(self, images: np.ndarray) -> str:
        parts = {"format": FORMAT, "model": self._model_key, "images": images_sha256(images),
                 "transform": self.transform.to_spec(), "amp": self.amp, "device": self.device.type}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def __call__(self, split: str, images: np.ndarray) -> torch.Tensor:
        started = time.perf_counter()
        path = self.folder / f"{self.key(images)}.npy"
        features = self._read(path, (len(images), self.width))
        hit = features is not None
        if features is None:
            computed = extract_features(self.backbone, self.transform, images, self.device, self.amp, self.batch_size)
            features = computed.cpu().numpy()
            if np.isfinite(features).all():  # non-finite features fail the run; they are never kept
                self._write(path, features)
        seconds = time.perf_counter() - started
        self.log.append({"split": split, "images": len(images), "cached": hit, "seconds": round(seconds, 3),
                         "images_per_s": round(len(images) / seconds, 1) if seconds > 0 and not hit else None})
        return torch.from_numpy(np.array(features, dtype=np.float32)).to(self.device)

    def time_backbone(self, images: np.ndarray) -> float | None:
        """Images per second through the backbone (after one warm-up batch), for a run whose features were cached."""
        if len(images) == 0:
            return None
        extract_features(self.backbone, self.transform, images[:self.batch_size], self.device, self.amp, self.batch_size)
        started = time.perf_counter()
        extract_features(self.backbone, self.transform, images, self.device, self.amp, self.batch_size)
        seconds = time.perf_counter() - started
        return round(len(images) / seconds, 1) if seconds > 0 else None

    @staticmethod
    def _write(path: Path, features: np.ndarray) -> None:
        """The features and, beside them, their sha256 (a file edited or swapped since is not trusted)."""
        buffer = io.BytesIO()
        np.save(buffer, features, allow_pickle=False)
        data = buffer.getvalue()
        try:
            atomic_write(path, data)
            atomic_write(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest())
        except (OSError, CnnlabError):
            pass  # a read-only data home or a link in the way: the run goes on, computing them next time again

    @staticmethod
    def _read(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
        """The cached features, or None when absent, damaged, edited or of another shape (computed again)."""
        digest = path.with_suffix(".sha256")
        if not path.is_file() or path.is_symlink() or not digest.is_file() or digest.is_symlink():
            return None
        try:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != digest.read_text().strip():
                return None
            features = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError, UnicodeDecodeError):
            return None
        if features.dtype != np.float32 or features.shape != shape or not np.isfinite(features).all():
            return None
        return features
