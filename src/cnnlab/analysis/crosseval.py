"""Cross-split evaluation: models trained on one dataset (rows) tested on others (columns).

Labels and predictions meet in the coarser of the two label sets: a model with more classes than the
test set has its predictions mapped into the test set's classes (a byclass model's 'c' and 'C' both
count as bymerge's 'C'); otherwise the test labels are mapped into the model's classes (bymerge's 'C'
into a letters model's 'C/c'). EMNIST splits use NIST's merging rules (data.emnist_label_map);
CIFAR-100's fine classes map into its 20 superclasses by the pairs its archive labels every image with
(data.load.cifar100_fine_to_coarse), and superclass predictions are never split into fine classes;
other datasets are matched by class name. Test images whose class has no counterpart are dropped.

EMNIST's splits share images across their train/test divisions, so by default only test images the
model did not train on are scored (64-bit image hashes against the run's training images); the
number dropped and the accuracy with them kept are reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError


@dataclass(frozen=True)
class LabelMapping:
    mode: str  # 'predictions' (model classes -> test classes) or 'labels' (test classes -> model classes)
    table: np.ndarray  # the mapping of the side that moves; -1 where a class has no counterpart
    test_classes: int
    rule: str  # one line for under the table

    def apply(self, labels: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kept mask, labels, predictions) in the shared label set."""
        if self.mode == "predictions":
            reachable = np.zeros(self.test_classes, bool)  # test classes some model class maps to
            reachable[self.table[self.table >= 0]] = True
            keep = reachable[labels]
            return keep, labels, self.table[predicted]  # a prediction without counterpart (-1) is wrong
        mapped = self.table[labels]
        return mapped >= 0, mapped, predicted


def _emnist_split(name: str) -> str | None:
    return name.split("-", 1)[1] if name.startswith("emnist-") else None


CIFAR100_FINE, CIFAR100_COARSE = "cifar100", "cifar100-coarse"


def label_mapping(train_name: str, train_classes, test_name: str, test_classes) -> LabelMapping:
    """How a model of train_name's classes is scored on test_name's labels (see the module docstring)."""
    from ..data import emnist_label_map

    if list(train_classes) == list(test_classes):
        return LabelMapping("predictions", np.arange(len(test_classes)), len(test_classes), "same classes")
    if {train_name, test_name} == {CIFAR100_FINE, CIFAR100_COARSE}:
        return _cifar100_superclasses(train_name, train_classes, test_classes)
    source, target = _emnist_split(train_name), _emnist_split(test_name)
    coarse_test = len(train_classes) >= len(test_classes)

    def by_name(a, b):
        index = {name: i for i, name in enumerate(b)}
        return np.array([index.get(name, -1) for name in a], dtype=np.int64)

    if source and target:
        table = emnist_label_map(source, target) if coarse_test else emnist_label_map(target, source)
        how = "NIST's merging rules (bymerge/balanced merge 15 look-alike letters; letters folds case)"
    else:
        table = by_name(train_classes, test_classes) if coarse_test else by_name(test_classes, train_classes)
        how = "identical class names"
    if not (table >= 0).any():
        raise DataError(f"the classes of {train_name} ({len(train_classes)}) and {test_name} ({len(test_classes)}) "
                        f"cannot be mapped onto each other ({how} match none); cross-evaluate datasets that share "
                        f"classes")
    if coarse_test:
        rule = f"predictions mapped into {test_name}'s {len(test_classes)} classes by {how}"
    else:
        rule = f"{test_name} labels mapped into {train_name}'s {len(train_classes)} classes by {how}"
    return LabelMapping("predictions" if coarse_test else "labels", table, len(test_classes), rule)


def _cifar100_superclasses(train_name: str, train_classes, test_classes) -> LabelMapping:
    """A fine CIFAR-100 model's predictions mapped into the 20 superclasses by the archive's label pairs."""
    from ..data.load import cifar100_fine_to_coarse

    if train_name == CIFAR100_COARSE:
        raise ConfigError(f"a {CIFAR100_COARSE} model predicts superclasses, which cannot be split into "
                          f"{CIFAR100_FINE}'s fine classes; score a {CIFAR100_FINE} run on {CIFAR100_COARSE} instead "
                          f"(its fine predictions are merged into superclasses)")
    hierarchy = cifar100_fine_to_coarse()
    if list(train_classes) != list(hierarchy.fine_classes) or list(test_classes) != list(hierarchy.coarse_classes):
        raise DataError(f"the run's {len(train_classes)} classes or {CIFAR100_COARSE}'s {len(test_classes)} differ "
                        f"from the fine ({len(hierarchy.fine_classes)}) and coarse ({len(hierarchy.coarse_classes)}) "
                        f"class names of the CIFAR-100 archive in the data home; score the run with the archive it "
                        f"was trained on (cnnlab data add cifar100 --from ARCHIVE)")
    return LabelMapping("predictions", hierarchy.table, len(test_classes),
                        f"predictions mapped into {CIFAR100_COARSE}'s {len(test_classes)} superclasses by the fine → "
                        f"superclass pairs of CIFAR-100's labels")


@dataclass
class CrossCell:
    run: str
    trained_on: str
    data: str
    accuracy: float  # on the scored images: mapped, and (by default) not seen in training
    macro_f1: float
    images_per_s: float
    images: int  # the test split's size
    unmapped: int  # dropped: their class has no counterpart
    seen: int  # dropped: the model trained on an identical image
    contaminated_accuracy: float  # mapped images, seen ones kept
    rule: str

    @property
    def scored(self) -> int:
        return self.images - self.unmapped - self.seen


def training_hashes(run) -> np.ndarray:
    """Hashes of the images a loaded run was trained on (its config's data, split as it was)."""
    from ..data import image_hashes, load_splits

    d = run.config.data
    dataset = load_splits(d)
    return np.unique(image_hashes(dataset["train"].images))


def crosseval(runs: list[str | Path], datasets: list[str], keep_seen: bool = False,
              device: str | None = None) -> list[CrossCell]:
    """Every run on the test split of every dataset (rows x columns, row-major)."""
    from ..data import image_hashes, load_dataset
    from ..engine.inference import load_run
    from ..engine.scores import macro_f1

    if not runs or not datasets:
        raise DataError("crosseval needs at least one run and one dataset (--data A,B,C)")
    from ..errors import CnnlabError

    tests = {}
    for name in datasets:
        try:
            dataset = load_dataset(name, download=False, progress=False)
        except CnnlabError as exc:
            raise type(exc)(f"--data {name}: {exc}") from None
        if "test" not in dataset.splits:
            raise DataError(f"--data {name}: it has no test split (present: {', '.join(dataset.splits)}); "
                            f"cross-evaluate on datasets with a test split")
        test = dataset["test"]
        tests[name] = (dataset, test, image_hashes(test.images))
    cells = []
    for path in runs:
        run = load_run(path, device)
        seen_hashes = training_hashes(run)
        trained = (run.spec["in_chans"], *run.spec["input_size"])
        for name, (dataset, test, hashes) in tests.items():
            if tuple(dataset.image_shape) != tuple(trained):
                raise DataError(f"--data {name}: its images are {'x'.join(map(str, dataset.image_shape))} but "
                                f"{path} was trained on {'x'.join(map(str, trained))}; cross-evaluate on datasets "
                                f"with the run's image shape")
            mapping = label_mapping(run.config.data.name, run.classes, name, dataset.classes)
            logits, seconds, timed = run.trainer.predict_logits(test.images)
            predicted = logits.argmax(1).cpu().numpy()
            keep, labels, predictions = mapping.apply(np.asarray(test.labels), predicted)
            seen = np.isin(hashes, seen_hashes) & keep
            scored = keep if keep_seen else keep & ~seen
            if not scored.any():
                raise DataError(f"no test image of {name} is left to score {path} on ({int(keep.sum())} mapped, "
                                f"{int(seen.sum())} of them seen in training)")
            right = predictions == labels
            cells.append(CrossCell(
                str(path), run.config.data.name, name, float(right[scored].mean()),
                macro_f1(labels[scored], predictions[scored]),
                timed / seconds if timed and seconds > 0 else float("nan"), len(test.labels),
                int((~keep).sum()), int(seen.sum()) if not keep_seen else 0, float(right[keep].mean()),
                mapping.rule))
    return cells


def matrix(cells: list[CrossCell], value: str = "accuracy"):
    """pandas frame: one row per run, one column per dataset."""
    import pandas as pd

    frame = pd.DataFrame([{"run": c.run, "data": c.data, value: getattr(c, value)} for c in cells])
    return frame.pivot(index="run", columns="data", values=value).reindex(
        index=list(dict.fromkeys(c.run for c in cells)), columns=list(dict.fromkeys(c.data for c in cells)))
