"""EMNIST's six splits: official sizes, class names from NIST's mapping files, label maps between splits."""

from __future__ import annotations

import re
import string
from pathlib import Path

import numpy as np

from ..errors import DataError
from .download import RemoteFile

ZIP_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
ZIP_NAME = "gzip.zip"
ZIP_SIZE_TEXT = "about 560 MB"

SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")

OFFICIAL_SIZES = {
    "byclass": {"train": 697_932, "test": 116_323},
    "bymerge": {"train": 697_932, "test": 116_323},
    "balanced": {"train": 112_800, "test": 18_800},
    "letters": {"train": 124_800, "test": 20_800},
    "digits": {"train": 240_000, "test": 40_000},
    "mnist": {"train": 60_000, "test": 10_000},
}

# The 15 letters whose upper and lower case NIST merged in bymerge and balanced.
MERGED_LETTERS = "cijklmopsuvwxyz"

# sha256 of NIST's .gz members of gzip.zip (from ../shared/data/README.md, i.e. NIST's files).
MEMBER_SHA256 = {
    "balanced-test-images": "117fc12b015e37ea98bfb2cbba3f77c3782c056cdbd219b87abfc8661d7135db",
    "balanced-test-labels": "a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd",
    "balanced-train-images": "74295e75e4e9fa2c102147460ee7eb763653d5132d883a84fb88932bfb8d2db4",
    "balanced-train-labels": "b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed",
    "byclass-test-images": "5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd",
    "byclass-test-labels": "501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a",
    "byclass-train-images": "9e21987f03a6eb8b870187e785883ddad96947299587908f1a7ec2ca0f4be5f0",
    "byclass-train-labels": "f7ef403d48dc18a89dae0d83d11ee69cecb6e1c12c3a961d03712e495c02a8fa",
    "bymerge-test-images": "5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683",
    "bymerge-test-labels": "8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35",
    "bymerge-train-images": "39bf8c68037dad40db35348895f7e4e056e8c0a005ab78869c9fbc2c96e947be",
    "bymerge-train-labels": "2c47293b9e62d6abf6ad05fbf67e40baa32adfd380b8d7b44dcc35534b64e1f1",
    "digits-test-images": "20ebe43509264f7639d37c835a3f0b009e90b29e00a099a03101abe1644a3f63",
    "digits-test-labels": "bad1834c45d5988e270b99d43b13edc3fd898f658ffbc2caf2846ef27f7b05b0",
    "digits-train-images": "f7c95004d14d81af89522e67d8f0c781dfb3bd544181c81bfe1eb6b41c35b726",
    "digits-train-labels": "6638a6ff5fe2eefd9cca2471995b46c82986b8e4b2a70d2f5ce8e05d7edb319e",
    "letters-test-images": "50f0e93d75b99b463e9760b8345866f22587fa2c2fba472730a5ba09c693412d",
    "letters-test-labels": "924955c31fe7fd809b7303b5c0141282955f4b8390c74cdfd5d80435e0f4b4cb",
    "letters-train-images": "6288f418a917e007bf5fddb823a2dc7a5c6a35031401b93292a539cb12bd881f",
    "letters-train-labels": "9759af91ea6bccdf07a6040fd085861f2ec88e37f7c3f5760f6feb57106fbe5c",
    "mnist-test-images": "b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6",
    "mnist-test-labels": "bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
    "mnist-train-images": "5f9942f441031c0f1f2e4d162059fd6e19ea808b34c328b6d16cab0ed24c78f2",
    "mnist-train-labels": "00c6d3c2342fdffb1711e0b5656cac4ce5862d2826399d383a9bac07d612e9f8",
}

# Byte sizes of those members, where known (the others are capped at download.MAX_MEMBER_BYTES).
MEMBER_SIZE = {
    "balanced-test-images": 4_714_707, "balanced-test-labels": 13_504,
    "balanced-train-images": 28_207_740, "balanced-train-labels": 80_618,
    "byclass-train-images": 173_367_313, "byclass-train-labels": 491_603,
    "bymerge-test-images": 28_905_295, "bymerge-test-labels": 79_351,
    "bymerge-train-images": 173_375_281, "bymerge-train-labels": 476_444,
    "digits-test-images": 9_908_519, "digits-test-labels": 19_960,
    "digits-train-images": 59_515_779, "digits-train-labels": 113_859,
    "letters-test-images": 5_039_157, "letters-test-labels": 144,
    "letters-train-images": 30_804_864, "letters-train-labels": 79_283,
    "mnist-test-images": 2_484_884, "mnist-test-labels": 5_144,
    "mnist-train-labels": 29_480,
}

# sha256 and size of NIST's six mapping files: a different one would rename the classes.
MAPPING_SHA256 = {
    "byclass": ("68fa9091ed325830418b5a8d732f32316e54a480b9f8994a161abb4eddd0d078", 447),
    "bymerge": ("956dc507bf69e9f31f4e3e876d22ec66124aa229b5d0bd65ab8956a8044d3ede", 328),
    "balanced": ("956dc507bf69e9f31f4e3e876d22ec66124aa229b5d0bd65ab8956a8044d3ede", 328),
    "letters": ("a56cb9a31c08e3251a61ea7b1ec8bc4f4cabdc1edf3128508d3a485ad53fa456", 274),
    "digits": ("6d157dc46a7b1c80d630f4fed571d9964db37ee1669cac403b6db2c8bb109d94", 60),
    "mnist": ("6d157dc46a7b1c80d630f4fed571d9964db37ee1669cac403b6db2c8bb109d94", 60),
}

MAPPING_FIX = ("it differs from NIST's official mapping file, so its class names cannot be trusted: use the file "
               "from NIST's gzip.zip, or leave it out (cnnlab knows NIST's class names)")

PARTIAL_PATTERN = re.compile(
    r"^emnist-(?P<split>[a-z]+)-(?P<part>train|test)-items(?P<start>\d+)to(?P<end>\d+)-"
    r"(?P<kind>images|labels)-idx[13]-ubyte(\.gz)?$"
)


def member_name(split: str, part: str, kind: str) -> str:
    return f"emnist-{split}-{part}-{kind}-{'idx3' if kind == 'images' else 'idx1'}-ubyte.gz"


def mapping_name(split: str) -> str:
    return f"emnist-{split}-mapping.txt"


def member_specs() -> dict[str, RemoteFile]:
    """Every member of NIST's gzip.zip that cnnlab takes (.gz files and mapping files), with its sha256."""
    specs = {}
    for key, digest in MEMBER_SHA256.items():
        split, part, kind = key.split("-")
        name = member_name(split, part, kind)
        specs[name] = RemoteFile(name, url=None, sha256=digest, size=MEMBER_SIZE.get(key))
    for split, (digest, size) in MAPPING_SHA256.items():
        name = mapping_name(split)
        specs[name] = RemoteFile(name, url=None, sha256=digest, size=size, fix=MAPPING_FIX)
    return specs


def zip_spec() -> RemoteFile:
    # NIST publishes no checksum for the zip itself; every member is verified when extracted.
    return RemoteFile(ZIP_NAME, url=ZIP_URL)


def builtin_mapping(split: str) -> list[str]:
    """Class names as NIST's mapping files give them (letters: 'A/a', labels shifted to start at 0)."""
    digits = list(string.digits)
    upper = list(string.ascii_uppercase)
    if split == "byclass":
        return digits + upper + list(string.ascii_lowercase)
    if split in ("bymerge", "balanced"):
        return digits + upper + [c for c in string.ascii_lowercase if c not in MERGED_LETTERS]
    if split == "letters":
        return [f"{c}/{c.lower()}" for c in upper]
    if split in ("digits", "mnist"):
        return digits
    raise DataError(f"unknown EMNIST split {split!r}; known: {', '.join(SPLITS)}")


MAX_MAPPING_BYTES = 64 << 10  # NIST's largest mapping file is 447 bytes


def _mapping_lines(path: Path) -> list[str]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MAPPING_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_MAPPING_BYTES:
        raise DataError(f"{path}: more than {MAX_MAPPING_BYTES:,} bytes; a mapping file holds one "
                        "'label ascii_code' line per class")
    try:
        return data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text mapping file (expected 'label ascii_code' lines)") from None


def read_mapping(path: Path) -> list[str]:
    """Parse NIST's `label ascii [ascii]` mapping file into class names indexed from 0."""
    rows = []
    for lineno, line in enumerate(_mapping_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            label, *codes = (int(x) for x in fields)
            names = [chr(c) for c in codes]
        except (ValueError, OverflowError):
            raise DataError(f"{path}:{lineno}: expected 'label ascii_code' but read {line!r}") from None
        if not names:
            raise DataError(f"{path}:{lineno}: no character code after label {label}")
        rows.append((label, "/".join(names)))
    rows.sort()
    offset = rows[0][0] if rows else 0
    labels = [label - offset for label, _ in rows]
    if labels != list(range(len(rows))):
        raise DataError(f"{path}: labels are not consecutive")
    return [name for _, name in rows]


def check_mapping(path: Path, split: str, fix: str = MAPPING_FIX) -> list[str]:
    """The class names of a mapping file, refused (DataError) unless they are NIST's for `split`.

    Compares content, not bytes, so a copy with other line endings or spacing passes.
    """
    names = read_mapping(path)
    first = next((line.split()[0] for line in _mapping_lines(path) if line.strip()), None)
    if names != builtin_mapping(split) or first != str(label_offset(split)):
        raise DataError(f"{path}: {fix}")
    return names


def label_offset(split: str) -> int:
    """Letters' labels start at 1 in NIST's files; cnnlab stores them from 0."""
    return 1 if split == "letters" else 0


def group_key(name: str, split: str) -> str:
    """The character group a class name stands for under `split`'s merging rule."""
    char = name.split("/")[0]
    if split == "letters":
        return char.upper()
    if split in ("bymerge", "balanced") and char.lower() in MERGED_LETTERS:
        return char.upper()
    return char


def label_map(source: str, target: str) -> np.ndarray:
    """For each class of `source`, its class in `target`, or -1 when it has none or is ambiguous.

    byclass → bymerge/balanced merges the 15 look-alike letters; anything → letters folds case and
    drops digits; anything → digits/mnist keeps digits only. A coarse class that splits in the
    target (letters 'A/a' → bymerge 'A' and 'a') maps to -1.
    """
    target_names = builtin_mapping(target)
    by_key: dict[str, list[int]] = {}
    for index, name in enumerate(target_names):
        by_key.setdefault(group_key(name, target), []).append(index)
    out = np.full(len(builtin_mapping(source)), -1, dtype=np.int64)
    for index, name in enumerate(builtin_mapping(source)):
        keys = {group_key(c, target) for c in name.split("/")}
        hits = {i for k in keys for i in by_key.get(k, [])}
        if len(hits) == 1:
            out[index] = hits.pop()
    return out
