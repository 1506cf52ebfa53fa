"""Classification metrics from saved predictions (analysis/metrics.py): hand-computed values on tiny
examples, scikit-learn's own functions on small hand-made arrays, and a real LeNet-5 run on
scikit-learn's digits (two epochs, built once for the module, a few seconds)."""

from __future__ import annotations

import json
import shutil
import string

import numpy as np
import pytest
from run_helpers import train_digits
from sklearn import metrics as skm

from cnnlab.analysis.metrics import (
    ConfusedPair,
    analyse_run,
    case_insensitive_accuracy,
    classification_metrics,
    confusion,
    most_confused_pairs,
    per_class_table,
    read_run_predictions,
    row_normalised,
)
from cnnlab.errors import CnnlabError, DataError
from cnnlab.runfolder import Predictions, RunFolder

EMNIST_BYCLASS = [*string.digits, *string.ascii_uppercase, *string.ascii_lowercase]


def one_hot_logits(predicted, num_classes: int) -> np.ndarray:
    """Logits whose argmax is `predicted` (the other classes get distinct, smaller scores)."""
    predicted = np.asarray(predicted)
    logits = np.tile(np.linspace(-1.0, -0.1, num_classes, dtype=np.float32), (len(predicted), 1))
    logits[np.arange(len(predicted)), predicted] = 5.0
    return logits


# ---- a tiny example computed by hand ----------------------------------------------------------------------
#   true:      0 0 0 0 1 1 2 2
#   predicted: 0 0 0 1 1 1 2 0
# class 0: TP 3, FP 1, FN 1 -> P 3/4, R 3/4, F1 3/4   (support 4)
# class 1: TP 2, FP 1, FN 0 -> P 2/3, R 1,   F1 4/5   (support 2)
# class 2: TP 1, FP 0, FN 1 -> P 1,   R 1/2, F1 2/3   (support 2)
TINY_LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2])
TINY_PREDICTED = np.array([0, 0, 0, 1, 1, 1, 2, 0])
TINY_P = [3 / 4, 2 / 3, 1.0]
TINY_R = [3 / 4, 1.0, 1 / 2]
TINY_F1 = [3 / 4, 4 / 5, 2 / 3]
TINY_SUPPORT = [4, 2, 2]


def test_classification_metrics_tiny_example_by_hand():
    scores = classification_metrics(TINY_LABELS, one_hot_logits(TINY_PREDICTED, 3))
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert scores["top5"] is None  # three classes: top-5 means nothing
    assert scores["macro_precision"] == pytest.approx(np.mean(TINY_P))
    assert scores["macro_recall"] == pytest.approx(np.mean(TINY_R))
    assert scores["macro_f1"] == pytest.approx(np.mean(TINY_F1))
    w = np.array(TINY_SUPPORT) / sum(TINY_SUPPORT)
    assert scores["weighted_precision"] == pytest.approx(w @ TINY_P)  # (3 + 4/3 + 2) / 8
    assert scores["weighted_recall"] == pytest.approx(6 / 8)  # weighted recall is the accuracy
    assert scores["weighted_f1"] == pytest.approx(w @ TINY_F1)  # (3 + 1.6 + 4/3) / 8
    assert all(isinstance(v, float) for k, v in scores.items() if k != "top5")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    num_classes, n = 7, 60
    labels = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)])
    logits = rng.normal(size=(n, num_classes)).astype(np.float32)
    logits[np.arange(n)[: n // 2], labels[: n // 2]] += 2.0  # half of them mostly right
    predicted = logits.argmax(1)
    scores = classification_metrics(labels, logits)
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert scores["top5"] == pytest.approx(skm.top_k_accuracy_score(labels, logits, k=5,
                                                                    labels=np.arange(num_classes)))
    for average in ("macro", "weighted"):
        # every class occurs among the labels, so scikit-learn's default label set is the same
        assert scores[f"{average}_f1"] == pytest.approx(skm.f1_score(labels, predicted, average=average,
                                                                    zero_division=0))
        assert scores[f"{average}_precision"] == pytest.approx(
            skm.precision_score(labels, predicted, average=average, zero_division=0))
        assert scores[f"{average}_recall"] == pytest.approx(
            skm.recall_score(labels, predicted, average=average, zero_division=0))


def test_top5_by_hand_with_six_classes():
    # rows: the true class ranked 1st, 5th, 6th (last) and 5th
    logits = np.array([[9, 1, 2, 3, 4, 5],
                       [1, 2, 3, 4, 5, 6],
                       [1, 2, 3, 4, 5, 6],
                       [6, 5, 4, 3, 2, 1]], dtype=np.float32)
    labels = np.array([0, 1, 0, 4])
    scores = classification_metrics(labels, logits)
    assert scores["top5"] == pytest.approx(3 / 4)
    assert scores["accuracy"] == pytest.approx(1 / 4)


def test_macro_averages_over_the_classes_that_occur_in_the_labels():
    # class 2 is predicted but never true: it is left out of the averages (not counted as a 0)
    labels = np.array([0, 0, 1, 1])
    predicted = np.array([0, 2, 1, 1])
    scores = classification_metrics(labels, one_hot_logits(predicted, 3))
    assert scores["macro_recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert scores["macro_precision"] == pytest.approx((1 + 1) / 2)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    present = np.unique(labels)
    assert scores["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, labels=present, average="macro"))


def test_per_class_table_by_hand_including_a_class_without_support():
    classes = ["zero", "one", "two", "three"]  # 'three' never occurs and is never predicted
    table = per_class_table(TINY_LABELS, TINY_PREDICTED, classes)
    assert list(table.columns) == ["class", "support", "precision", "recall", "f1"]
    assert list(table["class"]) == classes
    assert list(table["support"]) == [*TINY_SUPPORT, 0]
    np.testing.assert_allclose(table["precision"], [*TINY_P, 0.0])
    np.testing.assert_allclose(table["recall"], [*TINY_R, 0.0])
    np.testing.assert_allclose(table["f1"], [*TINY_F1, 0.0])
    # recall is each class's own accuracy
    for index in range(3):
        mask = TINY_LABELS == index
        assert table["recall"][index] == pytest.approx((TINY_PREDICTED[mask] == index).mean())


def test_confusion_counts_and_row_normalised():
    matrix = confusion(TINY_LABELS, TINY_PREDICTED, 4)
    expected = np.array([[3, 1, 0, 0],
                         [0, 2, 0, 0],
                         [1, 0, 1, 0],
                         [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)
    normalised = confusion(TINY_LABELS, TINY_PREDICTED, 4, normalize=True)
    np.testing.assert_allclose(normalised, [[3 / 4, 1 / 4, 0, 0], [0, 1, 0, 0], [1 / 2, 0, 1 / 2, 0], [0, 0, 0, 0]])
    assert np.isfinite(normalised).all()  # a class with no support gives a zero row, not NaN
    np.testing.assert_allclose(normalised[:3].sum(axis=1), 1.0)


def test_row_normalised_divides_each_row_by_its_support():
    counts = np.array([[3, 1], [0, 0], [2, 6]])
    shares = row_normalised(counts)
    np.testing.assert_allclose(shares, [[0.75, 0.25], [0, 0], [0.25, 0.75]])
    assert shares.dtype == np.float64 and counts.tolist() == [[3, 1], [0, 0], [2, 6]]  # the counts stay as they were
    np.testing.assert_array_equal(confusion(TINY_LABELS, TINY_PREDICTED, 4, normalize=True),
                                  row_normalised(confusion(TINY_LABELS, TINY_PREDICTED, 4)))


def test_confusion_class_predicted_but_never_true_has_a_zero_row_and_a_filled_column():
    labels = np.array([0, 1, 1])
    predicted = np.array([2, 2, 1])
    matrix = confusion(labels, predicted, 3)
    np.testing.assert_array_equal(matrix, [[0, 0, 1], [0, 1, 1], [0, 0, 0]])
    np.testing.assert_allclose(confusion(labels, predicted, 3, normalize=True), [[0, 0, 1], [0, .5, .5], [0, 0, 0]])
    np.testing.assert_array_equal(matrix, skm.confusion_matrix(labels, predicted, labels=[0, 1, 2]))


def test_most_confused_pairs_sum_both_directions_in_order_with_their_share():
    classes = ["O", "0", "l", "1", "x"]
    matrix = np.array([
        # O   0   l   1   x     (rows: true, columns: predicted)
        [50, 7, 0, 0, 0],   # O: 57 images, 7 read as '0'
        [5, 40, 0, 1, 0],   # 0: 46 images, 5 read as 'O', 1 as '1'
        [0, 0, 30, 9, 0],   # l: 39 images, 9 read as '1'
        [0, 0, 0, 20, 0],   # 1: 20 images
        [1, 0, 0, 0, 10],   # x: 11 images, 1 read as 'O'
    ])
    pairs = most_confused_pairs(matrix, classes)
    assert [(p.a, p.b) for p in pairs] == [("O", "0"), ("l", "1"), ("0", "1"), ("O", "x")]
    first = pairs[0]
    assert (first.a_as_b, first.b_as_a, first.total) == (7, 5, 12)
    assert first.rate == pytest.approx(12 / (57 + 46))
    second = pairs[1]
    assert (second.a_as_b, second.b_as_a, second.total) == (9, 0, 9)
    assert second.rate == pytest.approx(9 / (39 + 20))
    # ties (total 1) go by name; pairs never mistaken for each other are left out
    assert pairs[2] == ConfusedPair("0", "1", 1, 0, pytest.approx(1 / (46 + 20)))
    assert (pairs[3].a_as_b, pairs[3].b_as_a) == (0, 1)
    assert pairs[3].rate == pytest.approx(1 / (57 + 11))
    assert [(p.a, p.b) for p in most_confused_pairs(matrix, classes, top=2)] == [("O", "0"), ("l", "1")]


def test_most_confused_pairs_of_a_perfect_classifier_is_empty():
    assert most_confused_pairs(np.diag([3, 4, 5]), ["a", "b", "c"]) == []


def test_case_insensitive_accuracy_on_emnist_byclass_names():
    index = {name: i for i, name in enumerate(EMNIST_BYCLASS)}
    true = ["C", "c", "O", "O", "x", "7", "S", "k"]
    pred = ["c", "C", "o", "0", "X", "7", "5", "h"]
    labels = np.array([index[n] for n in true])
    predicted = np.array([index[n] for n in pred])
    # right: C/c, c/C, O/o, x/X, 7/7 -- wrong: O/0, S/5, k/h
    assert case_insensitive_accuracy(labels, predicted, EMNIST_BYCLASS) == pytest.approx(5 / 8)
    assert float((labels == predicted).mean()) == pytest.approx(1 / 8)  # case-sensitive: only '7'


def test_case_insensitive_accuracy_is_none_without_case_pairs():
    labels = np.array([0, 1, 2])
    assert case_insensitive_accuracy(labels, labels, list("0123456789")) is None
    assert case_insensitive_accuracy(labels, labels, ["A", "b", "C"]) is None
    # EMNIST balanced: 'a' and 'A' both exist, so it applies
    balanced = [*string.digits, *string.ascii_uppercase, *"abdefghnqrt"]
    a, big_a = balanced.index("a"), balanced.index("A")
    assert case_insensitive_accuracy(np.array([big_a, a]), np.array([a, big_a]), balanced) == 1.0


# ---- a real run -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_digits(tmp_path_factory, "metrics", epochs=2)


def raw_predictions(path, split="test"):
    with np.load(path / "predictions.npz") as data:
        return (data[f"{split}_labels"], data[f"{split}_logits"].astype(np.float32), str(data[f"{split}_sha256"]))


def test_read_run_predictions_reads_the_split_and_the_class_names(run):
    source = read_run_predictions(run.path)
    labels, logits, sha = raw_predictions(run.path)
    assert source.split == "test" and source.run == run.path
    assert source.classes == tuple(str(i) for i in range(10))
    np.testing.assert_array_equal(source.predictions.labels, labels)
    np.testing.assert_array_equal(source.predictions.logits, logits)
    assert source.predictions.sha256 == sha
    assert len(labels) == 360  # digits' test split
    val = read_run_predictions(str(run.path), "val")
    assert val.split == "val" and len(val.predictions.labels) != 360


def test_read_run_predictions_errors(run, tmp_path):
    with pytest.raises(DataError, match="no 'train' split") as caught:
        read_run_predictions(run.path, "train")
    assert "cnnlab evaluate" in str(caught.value)
    with pytest.raises(CnnlabError, match="no such run folder"):
        read_run_predictions(tmp_path / "missing")
    copy = shutil.copytree(run.path, tmp_path / "copy")
    (copy / "predictions.npz").unlink()
    with pytest.raises(CnnlabError, match="predictions.npz is missing"):
        read_run_predictions(copy)


def test_read_run_predictions_numbers_the_classes_when_model_json_does_not_match(run, tmp_path):
    copy = shutil.copytree(run.path, tmp_path / "copy")
    spec = json.loads((copy / "model.json").read_text())
    spec["classes"] = ["a", "b"]  # wrong length: the logits have 10 columns
    (copy / "model.json").write_text(json.dumps(spec))
    assert read_run_predictions(copy).classes == tuple(str(i) for i in range(10))


def test_analyse_run_agrees_with_scikit_learn_on_the_saved_predictions(run):
    labels, logits, _ = raw_predictions(run.path)
    predicted = logits.argmax(1)
    report = analyse_run(run.path, top_pairs=5)
    m = report.metrics
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert m["accuracy"] == pytest.approx(run.summary["test"]["accuracy"], abs=1e-6)
    assert m["top5"] == pytest.approx(skm.top_k_accuracy_score(labels, logits, k=5, labels=np.arange(10)))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="weighted"))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(labels, predicted, average="macro", zero_division=0))
    np.testing.assert_array_equal(report.matrix, skm.confusion_matrix(labels, predicted, labels=np.arange(10)))
    assert list(report.per_class["support"]) == np.bincount(labels, minlength=10).tolist()
    np.testing.assert_allclose(report.per_class["recall"],
                               [(predicted[labels == c] == c).mean() for c in range(10)])
    assert report.case_insensitive is None  # digits have no letter case
    # the pairs: the largest off-diagonal sums of the matrix and its transpose, by class name
    off = report.matrix + report.matrix.T
    off = np.triu(off, 1)
    totals = sorted(off[off > 0].tolist(), reverse=True)[:5]
    assert [p.total for p in report.pairs] == totals
    assert 0 < len(report.pairs) <= 5
    for pair in report.pairs:
        i, j = int(pair.a), int(pair.b)
        assert i < j
        assert pair.a_as_b == ((labels == i) & (predicted == j)).sum()
        assert pair.b_as_a == ((labels == j) & (predicted == i)).sum()
        assert pair.rate == pytest.approx(pair.total / ((labels == i).sum() + (labels == j).sum()))


def test_analyse_run_reads_its_files_alone(run, tmp_path):
    """Predictions written by hand with letter classes: the report uses them and the names in model.json."""
    copy = shutil.copytree(run.path, tmp_path / "copy")
    folder = RunFolder(copy)
    classes = ["A", "a", "B"]
    spec = json.loads((copy / "model.json").read_text())
    spec["classes"] = classes
    (copy / "model.json").write_text(json.dumps(spec))
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([1, 0, 0, 1, 2, 1])
    folder.write_predictions({"test": Predictions(np.arange(6), labels, one_hot_logits(predicted, 3), "x")})
    report = analyse_run(copy)
    assert report.source.classes == tuple(classes)
    assert report.metrics["accuracy"] == pytest.approx(3 / 6)
    assert report.case_insensitive == pytest.approx(5 / 6)  # only the 'B' read as 'a' is wrong
    assert [(p.a, p.b, p.a_as_b, p.b_as_a) for p in report.pairs] == [("A", "a", 1, 1), ("a", "B", 0, 1)]
