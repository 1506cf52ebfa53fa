"""Batched augmentation: pure functions of (images, generator), one kernel launch per op, no per-sample Python."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError


@dataclass(frozen=True)
class Augmentation:
    rotation: float = 0.0  # max degrees
    shift: float = 0.0  # max fraction of width/height
    scale: float = 0.0  # max relative zoom
    shear: float = 0.0  # max degrees
    erasing: float = 0.0  # probability per image
    flip: bool = False

    @property
    def affine(self) -> bool:
        return bool(self.rotation or self.shift or self.scale or self.shear)

    @property
    def active(self) -> bool:
        return self.affine or self.erasing > 0 or self.flip

    def check(self, flips_allowed: bool, dataset: str) -> Augmentation:
        if self.flip and not flips_allowed:
            raise ConfigError(f"augment.flip is refused for {dataset}: mirrored characters are other characters "
                              "(or no character); set augment.flip=false")
        return self


def _uniform(n: int, bound: float, generator, device):
    return (torch.rand(n, generator=generator, device=device) * 2 - 1) * bound


def random_affine(images, aug: Augmentation, generator):
    """Rotate, shift, scale and shear each image by its own random draw (float N×C×H×W, zero fill)."""
    n, device = images.shape[0], images.device
    angle = _uniform(n, math.radians(aug.rotation), generator, device)
    shear = _uniform(n, math.radians(aug.shear), generator, device)
    zoom = 1 + _uniform(n, aug.scale, generator, device)
    tx = _uniform(n, 2 * aug.shift, generator, device)  # affine_grid coordinates span 2 units
    ty = _uniform(n, 2 * aug.shift, generator, device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output pixel → input pixel: inverse zoom, rotation and an x-shear along y.
    a = cos / zoom
    b = (-sin + torch.tan(shear) * cos) / zoom
    c = sin / zoom
    d = (cos + torch.tan(shear) * sin) / zoom
    theta = torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_erasing(images, probability: float, generator, area=(0.02, 0.2), value: float = 0.0):
    """Blank one random rectangle in each image with `probability` (vectorised masks)."""
    n, _, h, w = images.shape
    device = images.device
    frac = area[0] + torch.rand(n, generator=generator, device=device) * (area[1] - area[0])
    aspect = torch.exp((torch.rand(n, generator=generator, device=device) * 2 - 1) * math.log(3))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h).long()
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w).long()
    top = (torch.rand(n, generator=generator, device=device) * (h - eh + 1)).long()
    left = (torch.rand(n, generator=generator, device=device) * (w - ew + 1)).long()
    rows = torch.arange(h, device=device)[None, :, None]
    cols = torch.arange(w, device=device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None]))
    chosen = torch.rand(n, generator=generator, device=device) < probability
    mask = (inside & chosen[:, None, None])[:, None]
    return images.masked_fill(mask, value)


def random_flip(images, generator):
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(images, aug: Augmentation, generator):
    """Apply the configured augmentations to a float batch; identity when none is set."""
    if aug.affine:
        images = random_affine(images, aug, generator)
    if aug.flip:
        images = random_flip(images, generator)
    if aug.erasing > 0:
        images = random_erasing(images, aug.erasing, generator)
    return images
