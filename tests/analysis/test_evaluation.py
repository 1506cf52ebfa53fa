"""A run evaluated in one call (analysis/evaluation.py): a real LeNet-5 run on scikit-learn's digits (one
epoch, built once for the module, a few seconds), scored, timed and analysed with the run loaded once."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from data_helpers import noise_folder
from run_helpers import train_digits

from cnnlab.analysis.evaluation import Evaluation, evaluate
from cnnlab.analysis.metrics import analyse_run
from cnnlab.errors import ConfigError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_digits(tmp_path_factory, "evaluation", epochs=1)


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    """A copy of the run (evaluate rewrites its predictions) in the data home it was trained with."""
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    return shutil.copytree(trained.path, tmp_path / "run")


@pytest.fixture
def loads(monkeypatch):
    """How often a run is loaded from its folder."""
    from cnnlab.engine import inference

    calls = []
    real = inference.load_run

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "load_run", counted)
    return calls


def test_evaluate_scores_times_and_analyses_the_run_loading_it_once(trained, run, loads):
    found = evaluate(run, confused=3)
    assert isinstance(found, Evaluation) and found.own_data
    assert len(loads) == 1
    scores = found.scores
    assert scores["data"] == "digits" and scores["images"] == 360
    assert scores["predictions"] == str(run / "predictions.npz")
    assert scores["accuracy"] == pytest.approx(trained.summary["test"]["accuracy"], abs=1e-6)
    assert scores["macro_f1"] == pytest.approx(trained.summary["test"]["macro_f1"], abs=1e-6)
    assert found.timing["latency_ms"] > 0 and found.timing["images_per_s"] > 0 and found.timing["batch"] == 256
    assert found.timing["device"] == scores["device"] == "cpu"
    expected = analyse_run(run, "test", 3)
    assert found.analysis.metrics == expected.metrics
    assert found.analysis.pairs == expected.pairs and len(found.analysis.pairs) <= 3
    np.testing.assert_array_equal(found.analysis.matrix, expected.matrix)
    assert found.analysis.metrics["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-6)


def test_evaluate_on_other_data_has_no_analysis(run, tmp_path):
    noise_folder(tmp_path / "noise")
    found = evaluate(run, f"folder:{tmp_path / 'noise'}")
    assert not found.own_data and found.analysis is None
    assert found.scores["images"] == 20 and found.timing["latency_ms"] > 0
    assert list(run.glob("predictions-*.npz"))


@pytest.mark.parametrize("confused", [-1, 2.5, True, "8"])
def test_evaluate_refuses_a_bad_number_of_pairs_before_loading(run, loads, confused):
    with pytest.raises(ConfigError, match=r"The '--confused' parameter of evaluate must be a whole number of class "
                                          r"pairs, 0 or more\. Got .* instead\."):
        evaluate(run, confused=confused)
    assert loads == []
