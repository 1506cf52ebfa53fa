"""Cross-split evaluation: the label mappings NIST's rules imply, and a real EMNIST model scored on
another split with the images it trained on left out."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.analysis.crosseval import crosseval, label_mapping, matrix
from cnnlab.data import DATASETS, emnist_label_map, image_hashes, load_dataset
from cnnlab.errors import DataError


def classes(name):
    return DATASETS.get(name).classes


def test_a_finer_model_has_its_predictions_mapped_into_the_test_classes():
    m = label_mapping("emnist-byclass", classes("emnist-byclass"), "emnist-bymerge", classes("emnist-bymerge"))
    assert m.mode == "predictions" and "bymerge" in m.rule
    byclass, bymerge = list(classes("emnist-byclass")), list(classes("emnist-bymerge"))
    c, big_c = byclass.index("c"), byclass.index("C")
    assert m.table[c] == m.table[big_c] == bymerge.index("C")  # 'c' and 'C' both count as bymerge's 'C'
    assert m.table[byclass.index("a")] == bymerge.index("a")  # a / A are not merged
    labels = np.array([bymerge.index("C"), bymerge.index("a")])
    keep, mapped_labels, mapped = m.apply(labels, np.array([c, byclass.index("A")]))
    assert keep.all() and (mapped == mapped_labels).tolist() == [True, False]


def test_a_coarser_model_has_the_test_labels_mapped_into_its_classes():
    m = label_mapping("emnist-letters", classes("emnist-letters"), "emnist-byclass", classes("emnist-byclass"))
    assert m.mode == "labels"
    byclass, letters = list(classes("emnist-byclass")), list(classes("emnist-letters"))
    labels = np.array([byclass.index("7"), byclass.index("q"), byclass.index("Q")])
    keep, mapped, _ = m.apply(labels, np.zeros(3, np.int64))
    assert keep.tolist() == [False, True, True]  # digits have no counterpart among letters: dropped
    assert mapped[1] == mapped[2] == letters.index("Q/q")


def test_a_digit_model_on_bymerge_drops_the_letters():
    m = label_mapping("emnist-mnist", classes("emnist-mnist"), "emnist-bymerge", classes("emnist-bymerge"))
    np.testing.assert_array_equal(m.table, emnist_label_map("bymerge", "mnist"))
    assert (m.table >= 0).sum() == 10


def test_datasets_are_matched_by_class_name_outside_emnist_and_unrelated_ones_are_refused():
    m = label_mapping("mnist", classes("mnist"), "emnist-digits", classes("emnist-digits"))
    assert m.rule == "same classes"
    m = label_mapping("mnist", classes("mnist"), "emnist-bymerge", classes("emnist-bymerge"))
    assert m.mode == "labels" and "identical class names" in m.rule and (m.table >= 0).sum() == 10
    with pytest.raises(DataError, match="cannot be mapped"):
        label_mapping("fashion-mnist", classes("fashion-mnist"), "mnist", classes("mnist"))


@pytest.mark.realdata
def test_an_emnist_mnist_model_on_bymerge_leaves_out_the_images_it_trained_on(use_emnist_home, tmp_path):
    """NIST drew EMNIST-mnist's test images from the same pool as bymerge's: scored naively, a model
    trained on them would be tested on some of its own training images."""
    from cnnlab.experiments.run import train_run

    config = {"data": {"name": "emnist-mnist", "carve_from": "test", "subset": 3000},
              "model": "lenet5", "train": {"epochs": 2, "threads": 2}}
    run = train_run(config, tmp_path / "run", progress=False)
    [own, other] = crosseval([run.path], ["emnist-mnist", "emnist-bymerge"])

    trained = load_dataset("emnist-mnist")["test"]  # the file the training images were carved from
    bymerge = load_dataset("emnist-bymerge")["test"]
    digits = np.isin(bymerge.labels, np.arange(10))  # bymerge's classes 0-9 are the digits
    assert other.images == len(bymerge) == 116_323
    assert other.unmapped == int((~digits).sum())
    # the seen images are the bymerge digits identical to one of the 3,000 - val - test training images
    from cnnlab.analysis.crosseval import training_hashes
    from cnnlab.engine.inference import load_run

    seen = np.isin(image_hashes(bymerge.images), training_hashes(load_run(run.path))) & digits
    assert other.seen == int(seen.sum()) > 0
    assert other.scored == int(digits.sum()) - other.seen
    assert 0.5 < other.accuracy <= 1 and 0.5 < own.accuracy <= 1
    assert own.seen > 0 and own.images == len(trained)  # its own test file holds its training images
    kept = crosseval([run.path], ["emnist-bymerge"], keep_seen=True)[0]
    assert kept.seen == 0 and kept.scored == int(digits.sum())
    assert kept.accuracy == pytest.approx(other.contaminated_accuracy)
    frame = matrix([own, other])
    assert list(frame.columns) == ["emnist-mnist", "emnist-bymerge"] and frame.shape == (1, 2)
    from typer.testing import CliRunner

    from cnnlab.cli import app

    result = CliRunner().invoke(app, ["crosseval", str(run.path), "--data", "emnist-mnist,emnist-bymerge"])
    assert result.exit_code == 0, result.output
    assert "rows: trained on; columns: tested on" in result.stdout
    assert f"{other.seen:,} seen in training" in result.stdout and "without a counterpart" in result.stdout
    bad = CliRunner().invoke(app, ["crosseval", str(run.path), "--data", "fashion-mnist"])
    assert bad.exit_code == 2 and "cannot be mapped" in bad.stderr
