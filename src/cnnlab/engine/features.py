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

    def __init__(self, backbone, transform, device, amp: str, batch_size: int = 256, folder: Path | None = None):
        self.backbone, self.transform, self.device, self.amp = backbone, transform, device, amp
        self.batch_size = batch_size
        self.folder = folder or features_dir()
        self._backbone_key = tensors_sha256(backbone.state_dict())
        self.log: list[dict] = []

    def key(self, images: np.ndarray) -> str:
        parts = {"format": FORMAT, "backbone": self._backbone_key, "images": images_sha256(images),
                 "transform": self.transform.to_spec(), "amp": self.amp, "device": self.device.type}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def __call__(self, split: str, images: np.ndarray) -> torch.Tensor:
        started = time.perf_counter()
        path = self.folder / f"{self.key(images)}.npy"
        features = self._read(path, len(images))
        hit = features is not None
        if features is None:
            computed = extract_features(self.backbone, self.transform, images, self.device, self.amp, self.batch_size)
            features = computed.cpu().numpy()
            buffer = io.BytesIO()
            np.save(buffer, features, allow_pickle=False)
            try:
                atomic_write(path, buffer.getvalue())
            except OSError:
                pass  # a read-only data home: the run goes on, computing the features next time again
        seconds = time.perf_counter() - started
        self.log.append({"split": split, "images": len(images), "cached": hit, "seconds": round(seconds, 3),
                         "images_per_s": round(len(images) / seconds, 1) if seconds > 0 and not hit else None})
        return torch.from_numpy(np.array(features, dtype=np.float32)).to(self.device)

    @staticmethod
    def _read(path: Path, count: int) -> np.ndarray | None:
        """The cached features, or None when absent, damaged or of another shape (computed again)."""
        if not path.is_file() or path.is_symlink():
            return None
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if features.dtype != np.float32 or features.ndim != 2 or len(features) != count \
                or not np.isfinite(features).all():
            return None
        return features
