"""Model selection: normalisation, weights, ranking by hand, and a real study ranked end to end."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.analysis.select import (
    Candidate,
    candidates_from,
    normalise,
    pareto_figures,
    parse_weights,
    rank,
    select,
    write_pareto_figures,
)
from cnnlab.errors import ConfigError, DataError


def test_normalisations_put_the_best_candidate_at_one():
    latency = np.array([2.0, 1.0, 4.0])
    np.testing.assert_allclose(normalise(latency, False, "minmax"), [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(normalise(latency, False, "rank"), [0.5, 1.0, 0.0])
    z = normalise(np.array([0.9, 0.8, 0.7]), True, "zscore")
    assert z.mean() == pytest.approx(0) and z[0] > z[1] > z[2]
    np.testing.assert_allclose(normalise(np.array([5.0, 5.0]), True, "minmax"), [1.0, 1.0])  # a tie: both best
    with pytest.raises(ConfigError, match="minmax, rank, zscore"):
        normalise(latency, True, "log")


def test_weights_are_parsed_and_checked():
    assert parse_weights("accuracy=0.5, latency=0.5") == {"accuracy": 0.5, "latency": 0.5}
    assert parse_weights(None) == {"accuracy": 0.6, "latency": 0.2, "size": 0.2}
    for bad, message in (("speed=1", "unknown criterion 'speed'"), ("accuracy", "criterion=weight"),
                         ("accuracy=x", "must be a number"), ("accuracy=-1", ">= 0"), ("accuracy=0", "above 0")):
        with pytest.raises(ConfigError, match=message):
            parse_weights(bad)


def by_hand(name, accuracy, latency, params):
    return Candidate(name, [], {"val_accuracy": accuracy, "latency_ms": latency, "params": params,
                                "images_per_s": 1000 / latency, "val_top5": float("nan")})


def test_the_weights_decide_between_an_accurate_slow_model_and_a_fast_one():
    def ranked(weights):
        candidates = [by_hand("big", 0.95, 10.0, 1_000_000), by_hand("small", 0.90, 1.0, 50_000),
                      by_hand("middle", 0.91, 5.0, 300_000)]
        return [c.name for c in rank(candidates, parse_weights(weights))]

    assert ranked("accuracy=1") == ["big", "middle", "small"]
    assert ranked("latency=1") == ["small", "middle", "big"]
    assert ranked("accuracy=0.4,latency=0.3,size=0.3")[0] == "small"  # 0.4*0 + 0.3 + 0.3 beats 0.4 + 0 + 0
    scored = rank([by_hand("a", 0.9, 1.0, 10), by_hand("b", 0.8, 2.0, 20)], {"accuracy": 3, "size": 1})
    assert scored[0].score == pytest.approx(1.0) and scored[1].score == pytest.approx(0.0)
    assert scored[0].parts == {"accuracy": 1.0, "size": 1.0}
    with pytest.raises(DataError, match="top5 is not known"):
        rank([by_hand("a", 0.9, 1.0, 10), by_hand("b", 0.8, 2.0, 20)], {"top5": 1})


def test_normalisation_is_refused_in_the_one_template():
    with pytest.raises(ConfigError) as caught:
        normalise(np.array([1.0, 2.0]), True, "log")
    assert str(caught.value) == ("The '--normalisation' parameter of select must be one of minmax, rank, zscore. "
                                 "Got 'log' instead.")
    with pytest.raises(ConfigError, match="The '--normalisation' parameter of select"):
        select(["anything"], normalisation="log")  # before any folder is read


def test_pareto_figures_of_accuracy_against_latency_and_size(tmp_path):
    from matplotlib.figure import Figure

    candidates = [by_hand("big", 0.95, 10.0, 1_000_000), by_hand("small", 0.90, 1.0, 50_000),
                  by_hand("dominated", 0.80, 12.0, 2_000_000)]
    figures = pareto_figures(candidates)
    assert list(figures) == ["pareto-latency", "pareto-size"]
    assert all(type(f) is Figure for f in figures.values())
    latency, size = (figures[s].axes[0] for s in ("pareto-latency", "pareto-size"))
    assert latency.get_xlabel().startswith("latency, ms per image (batch 1)")
    assert size.get_xlabel().startswith("parameters")
    assert latency.get_ylabel().startswith("validation accuracy")
    assert {t.get_text() for t in latency.texts} == {"big", "small", "dominated"}
    written = write_pareto_figures(candidates, tmp_path / "fig")
    assert [p.name for p in written] == ["pareto-latency.png", "pareto-latency.svg", "pareto-size.png",
                                         "pareto-size.svg"]
    assert all(p.parent == tmp_path / "fig" and p.stat().st_size > 0 for p in written)


def test_a_real_study_is_ranked_on_validation_accuracy_and_measured_speed(tmp_path):
    from cnnlab.experiments.study import run_study

    study = {"name": "sel", "base": {"data": "digits", "model": "lenet5", "train": {"epochs": 2, "threads": 1}},
             "ablate": {"model": [{"name": "rescnn", "widths": [8, 16]}]}, "seeds": 2}
    out = tmp_path / "study"
    run_study(study, out, progress=False)
    candidates = candidates_from([out])
    assert [c.name for c in candidates] == ["base", "model=rescnn-widths_8-16"]
    assert [len(c.runs) for c in candidates] == [2, 2]
    ranked = select([out], "accuracy=1", repeats=5)
    for c in ranked:
        f = c.figures
        assert f["seeds"] == 2 and f["latency_ms"] > 0 and f["images_per_s"] > 0 and f["params"] > 0
        assert 0 <= f["val_accuracy"] <= 1
    assert ranked[0].figures["val_accuracy"] >= ranked[1].figures["val_accuracy"]
    rescnn = next(c for c in ranked if c.name.startswith("model=rescnn"))
    lenet = next(c for c in ranked if c.name == "base")
    assert rescnn.figures["latency_ms"] > lenet.figures["latency_ms"]  # 3x3 residual stages vs LeNet-5, batch 1
    with pytest.raises(DataError, match="at least two candidates"):
        candidates_from([next((out / "base").iterdir())])

    from typer.testing import CliRunner

    from cnnlab.cli import app

    result = CliRunner().invoke(app, ["select", str(out), "--weights", "accuracy=0.5,latency=0.5",
                                      "--normalisation", "rank", "--plot", str(tmp_path / "fig")])
    assert result.exit_code == 0, result.output
    assert "selected: " in result.stdout and "model=rescnn-widths_8-16" in result.stdout
    for stem in ("pareto-latency", "pareto-size"):
        assert (tmp_path / "fig" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert "validation accuracy" in (tmp_path / "fig" / f"{stem}.svg").read_text()
    bad = CliRunner().invoke(app, ["select", str(out), "--weights", "speed=1"])
    assert bad.exit_code == 2 and "unknown criterion 'speed'" in bad.stderr
    evaluate = CliRunner().invoke(app, ["evaluate", str(candidates[0].runs[0])])
    assert evaluate.exit_code == 0 and "ms per image (batch 1)" in evaluate.stdout
