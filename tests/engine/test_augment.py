import pytest
import torch

from cnnlab.engine.augment import Augmentation, augment, random_affine, random_erasing, random_flip
from cnnlab.errors import ConfigError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _square_images(n=16, size=28):
    images = torch.zeros(n, 1, size, size)
    images[:, :, 10:18, 10:18] = 1.0
    return images


def test_identity_when_nothing_is_set():
    images = _square_images()
    assert torch.equal(augment(images, Augmentation(), _gen()), images)


def test_affine_is_deterministic_per_seed_and_differs_per_image():
    images = _square_images()
    aug = Augmentation(rotation=20, shift=0.1, scale=0.1, shear=10)
    a = random_affine(images, aug, _gen(1))
    b = random_affine(images, aug, _gen(1))
    c = random_affine(images, aug, _gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(a[0], a[1])  # each image has its own draw
    # the white square's mass is roughly kept (zoom ≤ 10 %, no part pushed off the canvas)
    assert a.sum(dim=(1, 2, 3)).div(64).sub(1).abs().max() < 0.3


def test_pure_shift_moves_the_square():
    images = _square_images(4)
    shifted = random_affine(images, Augmentation(shift=0.2), _gen(3))
    centre = lambda x: (x[0, 0].sum(0) * torch.arange(28.0)).sum() / x[0, 0].sum()  # noqa: E731
    moves = [abs(float(centre(shifted[i:i + 1]) - centre(images[i:i + 1]))) for i in range(4)]
    assert max(moves) > 0.5 and max(moves) <= 0.2 * 28 + 1


def test_erasing_blanks_rectangles_only_in_chosen_images():
    images = torch.ones(200, 1, 28, 28)
    erased = random_erasing(images, 0.5, _gen(0))
    touched = (erased == 0).flatten(1).any(1)
    assert 60 < int(touched.sum()) < 140
    fraction = (erased[touched] == 0).float().mean()
    assert 0.01 < float(fraction) < 0.3
    # an erased region is one rectangle: its zero rows and columns are contiguous
    zeros = (erased[touched][0, 0] == 0)
    rows = torch.nonzero(zeros.any(1)).flatten()
    assert int(rows[-1] - rows[0] + 1) == len(rows)


def test_flip_mirrors_about_half_of_the_images():
    images = torch.arange(28.0).expand(100, 1, 28, 28).clone()
    flipped = random_flip(images, _gen(0))
    mirrored = (flipped[:, 0, 0, 0] == 27).sum()
    assert 30 < int(mirrored) < 70
    assert torch.equal(flipped[flipped[:, 0, 0, 0] == 27], images.flip(-1)[flipped[:, 0, 0, 0] == 27])


def test_flips_are_refused_for_characters():
    with pytest.raises(ConfigError, match="mirrored characters"):
        Augmentation(flip=True).check(flips_allowed=False, dataset="emnist-letters")
    assert Augmentation(flip=True).check(flips_allowed=True, dataset="cifar10").flip
