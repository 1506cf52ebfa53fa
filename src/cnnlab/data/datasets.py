"""The named datasets: each one's source, classes, official split sizes and published checksums."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..registry import Registry
from . import emnist
from .download import RemoteFile
from .sources import CifarSource, DigitsSource, EmnistSource, IdxFamilySource, Source

CIFAR_ARCHIVES = {
    "cifar10": RemoteFile("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                          md5="c58f30108f718f92721af3b95e74349a"),
    "cifar100": RemoteFile("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                           md5="eb9058c3a382ffc7106e4002c42a8d85"),
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: Source
    classes: tuple[str, ...]
    official: dict[str, int]
    description: str
    flips_allowed: bool = False
    num_classes: int = 0  # when `classes` come from the files (CIFAR)
    image_shape: tuple[int, int, int] = (1, 28, 28)  # channels, height, width: known before the files are

    def __post_init__(self):
        if not self.num_classes:
            object.__setattr__(self, "num_classes", len(self.classes))


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _register(spec: DatasetSpec) -> None:
    DATASETS.register(spec.name, spec)


for _split in emnist.SPLITS:
    _register(DatasetSpec(
        f"emnist-{_split}", EmnistSource(_split), tuple(emnist.builtin_mapping(_split)),
        emnist.OFFICIAL_SIZES[_split], f"EMNIST {_split} (NIST handwritten characters, 28×28)"))

_DIGITS = tuple("0123456789")
_register(DatasetSpec(
    "mnist", IdxFamilySource("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": {"content_sha256": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"},
        "train-labels-idx1-ubyte.gz": {"content_sha256": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"},
        "t10k-images-idx3-ubyte.gz": {"content_sha256": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"},
        "t10k-labels-idx1-ubyte.gz": {"content_sha256": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
    }), _DIGITS, {"train": 60_000, "test": 10_000}, "MNIST handwritten digits (28×28)"))
_register(DatasetSpec(
    "fashion-mnist", IdxFamilySource("fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": {"content_sha256": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
        "train-labels-idx1-ubyte.gz": {"content_sha256": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
        "t10k-images-idx3-ubyte.gz": {"content_sha256": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
        "t10k-labels-idx1-ubyte.gz": {"content_sha256": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
    }, system_dirs=(Path("/usr/share/datasets/fashion-mnist"),)),
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    {"train": 60_000, "test": 10_000}, "Zalando Fashion-MNIST (28×28)", flips_allowed=True))
_register(DatasetSpec(
    "kmnist", IdxFamilySource("kmnist", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/", {
        "train-images-idx3-ubyte.gz": {"sha256": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"},
        "train-labels-idx1-ubyte.gz": {"sha256": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"},
        "t10k-images-idx3-ubyte.gz": {"sha256": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"},
        "t10k-labels-idx1-ubyte.gz": {"sha256": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"},
    }), ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    {"train": 60_000, "test": 10_000}, "Kuzushiji-MNIST cursive hiragana (28×28)"))
_register(DatasetSpec(
    "cifar10", CifarSource("cifar10", CIFAR_ARCHIVES["cifar10"]), (), {"train": 50_000, "test": 10_000},
    "CIFAR-10 colour images (32×32)", flips_allowed=True, num_classes=10, image_shape=(3, 32, 32)))
_register(DatasetSpec(
    "cifar100", CifarSource("cifar100", CIFAR_ARCHIVES["cifar100"]), (), {"train": 50_000, "test": 10_000},
    "CIFAR-100, 100 fine classes (32×32)", flips_allowed=True, num_classes=100, image_shape=(3, 32, 32)))
_register(DatasetSpec(
    "cifar100-coarse", CifarSource("cifar100-coarse", CIFAR_ARCHIVES["cifar100"]), (),
    {"train": 50_000, "test": 10_000}, "CIFAR-100, 20 superclasses (32×32)", flips_allowed=True, num_classes=20, image_shape=(3, 32, 32)))
_register(DatasetSpec("digits", DigitsSource(), _DIGITS, {"train": 1_437, "test": 360},
                      "scikit-learn 8×8 handwritten digits (offline)", image_shape=(1, 8, 8)))


def families() -> dict[str, list[str]]:
    """Raw-file families (what `cnnlab data add` takes) and the datasets each one feeds."""
    out: dict[str, list[str]] = {}
    for name, spec in DATASETS.items():
        out.setdefault(spec.source.family, []).append(name)
    return out


def spec_for_family(family: str) -> DatasetSpec:
    """The first dataset of a family, or the dataset itself when a dataset name is given."""
    if family in DATASETS:
        return DATASETS.get(family)
    groups = families()
    if family not in groups:
        known: Registry[bool] = Registry("dataset or family")
        for name in {*groups, *DATASETS.names()}:
            known.register(name, True)
        known.get(family)
    return DATASETS.get(groups[family][0])


def present_datasets(family: str) -> list[str]:
    """The datasets of `family` whose raw files are on this machine, in registry order."""
    return [name for name in families().get(family, []) if DATASETS.get(name).source.present()]
