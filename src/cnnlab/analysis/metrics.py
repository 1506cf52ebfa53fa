"""Classification metrics from a run's saved predictions (scikit-learn): accuracy, top-5, macro and
weighted F1, precision, recall, the per-class table, the confusion matrix and the most-confused
pairs by class name, and case-insensitive accuracy for EMNIST byclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.scores import macro_f1, top_k_accuracy
from ..errors import DataError
from ..runfolder import MODEL_SPEC, PREDICTIONS, Predictions, RunFolder


@dataclass(frozen=True)
class RunPredictions:
    """One split of a run: its predictions and the class names the model was trained with."""

    run: Path
    split: str
    predictions: Predictions
    classes: tuple[str, ...]


def read_run_predictions(path: str | Path, split: str = "test") -> RunPredictions:
    folder = RunFolder(path)
    folder.require(PREDICTIONS, MODEL_SPEC)
    splits = folder.read_predictions()
    if split not in splits:
        raise DataError(f"{folder.file(PREDICTIONS)} has no {split!r} split (it has {', '.join(splits)}); "
                        f"write one with `cnnlab evaluate {folder.path}`")
    classes = tuple(folder.read_model_spec().get("classes") or ())
    num_classes = splits[split].logits.shape[1]
    if len(classes) != num_classes:
        classes = tuple(str(i) for i in range(num_classes))
    return RunPredictions(folder.path, split, splits[split], classes)


def classification_metrics(labels, logits) -> dict:
    """Accuracy, top-5 and macro-F1 as training reports them (engine.scores), and weighted F1, precision
    and recall, each averaged over the classes that occur among the labels."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    labels, logits = np.asarray(labels), np.asarray(logits, dtype=np.float32)
    predicted = logits.argmax(1)
    present = np.unique(labels)
    scores = {"accuracy": float((predicted == labels).mean()) if len(labels) else float("nan"),
              "top5": top_k_accuracy(labels, logits, 5)}
    for average in ("macro", "weighted"):
        kwargs = {"labels": present, "average": average, "zero_division": 0}
        f1 = macro_f1(labels, predicted) if average == "macro" else float(f1_score(labels, predicted, **kwargs))
        scores[f"{average}_f1"] = f1
        scores[f"{average}_precision"] = float(precision_score(labels, predicted, **kwargs))
        scores[f"{average}_recall"] = float(recall_score(labels, predicted, **kwargs))
    return scores


def per_class_table(labels, predicted, classes):
    """pandas frame, one row per class: support, precision, recall (= the class's accuracy), F1."""
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    ids = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    return pd.DataFrame({"class": list(classes), "support": support, "precision": precision, "recall": recall,
                         "f1": f1})


def confusion(labels, predicted, num_classes: int, normalize: bool = False) -> np.ndarray:
    """Rows: true class; columns: predicted. normalize=True divides each row by its support."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, predicted, labels=np.arange(num_classes))
    return row_normalised(matrix) if normalize else matrix


def row_normalised(matrix) -> np.ndarray:
    """Each row of a confusion matrix divided by its sum (the true class's support): the share of the
    class's images given each prediction; a row without images stays 0."""
    counts = np.asarray(matrix, dtype=float)
    support = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)


@dataclass(frozen=True)
class ConfusedPair:
    a: str
    b: str
    a_as_b: int  # true a predicted b
    b_as_a: int
    rate: float  # (a_as_b + b_as_a) / (support of a + support of b)

    @property
    def total(self) -> int:
        return self.a_as_b + self.b_as_a


def most_confused_pairs(matrix: np.ndarray, classes, top: int = 10) -> list[ConfusedPair]:
    """Unordered pairs of classes by how often they are mistaken for each other (both directions),
    e.g. 'O' and '0', 'l' and '1', with the share of their images that went to the other one."""
    support = matrix.sum(axis=1)
    pairs = []
    n = len(matrix)
    for i in range(n):
        for j in range(i + 1, n):
            total = int(matrix[i, j] + matrix[j, i])
            if total:
                both = support[i] + support[j]
                pairs.append(ConfusedPair(classes[i], classes[j], int(matrix[i, j]), int(matrix[j, i]),
                                          float(total / both) if both else 0.0))
    pairs.sort(key=lambda p: (-p.total, p.a, p.b))
    return pairs[:top]


def case_insensitive_accuracy(labels, predicted, classes) -> float | None:
    """Accuracy when a letter's upper and lower case count as one (EMNIST byclass: 'c' for 'C' is
    right); None when no two classes differ only by case."""
    folded = [name.lower() for name in classes]
    if len(set(folded)) == len(folded):
        return None
    groups = {name: index for index, name in enumerate(dict.fromkeys(folded))}
    fold = np.array([groups[name] for name in folded])
    return float((fold[np.asarray(predicted)] == fold[np.asarray(labels)]).mean())


@dataclass
class RunReport:
    source: RunPredictions
    metrics: dict
    per_class: object  # pandas DataFrame
    matrix: np.ndarray
    pairs: list[ConfusedPair]
    case_insensitive: float | None


def analyse_run(path: str | Path, split: str = "test", top_pairs: int = 10) -> RunReport:
    """Everything above for one split of one run, from its files alone."""
    source = read_run_predictions(path, split)
    pred = source.predictions
    predicted = pred.predicted
    matrix = confusion(pred.labels, predicted, len(source.classes))
    return RunReport(source, classification_metrics(pred.labels, pred.logits),
                     per_class_table(pred.labels, predicted, source.classes), matrix,
                     most_confused_pairs(matrix, source.classes, top_pairs),
                     case_insensitive_accuracy(pred.labels, predicted, source.classes))
