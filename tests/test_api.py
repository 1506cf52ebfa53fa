"""The public API a notebook uses: `import cnnlab as cl`, on scikit-learn's digits (real data, offline)."""

import subprocess
import sys

import pytest

import cnnlab as cl

TINY = {"data": {"name": "digits", "subset": 400}, "model": {"name": "lenet5"},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1}}
STUDY = {"name": "api-study", "base": TINY, "ablate": {"train.lr": [0.003]}, "seeds": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return cl.train(TINY, tmp_path_factory.mktemp("runs") / "lenet5", progress=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return cl.run_study(STUDY, tmp_path_factory.mktemp("studies") / "api", progress=False)


def test_import_cnnlab_loads_no_torch_and_lists_the_api():
    code = ("import sys, cnnlab as cl; assert 'torch' not in sys.modules; "
            "print(' '.join(n for n in ('train', 'evaluate', 'run_study', 'Run', 'Study', 'quickstart') "
            "if n in dir(cl)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["train", "evaluate", "run_study", "Run", "Study", "quickstart"]


def test_every_public_name_resolves():
    missing = [name for name in cl.__all__ if getattr(cl, name, None) is None]
    assert missing == []


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        cl.trian  # noqa: B018


def test_train_returns_a_run_whose_summary_is_typed(trained):
    assert isinstance(trained, cl.Run)
    assert trained.status == "finished"
    summary = trained.summary
    assert isinstance(summary, cl.RunSummary) and isinstance(summary.test, cl.Scores)
    assert summary.model == "lenet5" and summary.data == "digits" and summary.epochs_run == 2
    assert 0.0 <= summary.test.accuracy <= 1.0 and summary.params > 0
    assert summary.extra["sizes"]["test"] == len(trained.predictions("test").predictions.labels)


def test_a_run_reopened_from_its_path_reads_the_same_files(trained):
    again = cl.Run(trained.path)
    assert again.summary == trained.summary
    assert again.config.train.epochs == 2 and again.config.data.subset == 400
    frame = again.metrics
    assert list(frame["epoch"]) == [1, 2] and {"train_loss", "val_acc", "lr"} <= set(frame.columns)


def test_a_run_draws_its_curves_and_confusion(trained):
    import matplotlib.pyplot as plt

    curves, heatmap = trained.curves(), trained.confusion()
    try:
        assert curves.axes and heatmap.axes
        classes = trained.analysis().source.classes
        assert len(classes) == 10
    finally:
        plt.close(curves)
        plt.close(heatmap)


def test_a_run_shows_as_a_table_in_jupyter(trained):
    page = trained._repr_html_()
    assert page.startswith("<table>") and "lenet5" in page and f"{trained.summary.test.accuracy:.2%}" in page


def test_train_takes_dotted_overrides_and_a_yaml_file(tmp_path):
    recipe = tmp_path / "run.yaml"
    recipe.write_text("data: {name: digits, subset: 300}\nmodel: lenet5\ntrain: {epochs: 3, threads: 1}\n")
    run = cl.train(recipe, tmp_path / "run", overrides=["train.epochs=1", "train.batch_size=100"], progress=False)
    assert run.config.train.epochs == 1 and run.config.train.batch_size == 100 and run.summary.epochs_run == 1


def test_resume_without_a_config_continues_the_runs_own(trained):
    again = cl.train(out=trained.path, resume=True, progress=False)
    assert again.summary == trained.summary


def test_opening_the_wrong_kind_of_folder_says_what_it_is(tmp_path, trained, study):
    with pytest.raises(cl.CnnlabError, match="study folder, not a run"):
        cl.Run(study.path)
    with pytest.raises(cl.CnnlabError, match="run folder, not a study"):
        cl.Study(trained.path)
    with pytest.raises(cl.CnnlabError, match="no such run folder"):
        cl.Run(tmp_path / "missing")


def test_evaluate_and_predict_a_run(trained, tmp_path):
    import numpy as np
    from PIL import Image

    result = cl.evaluate(trained)
    assert result.scores["accuracy"] == pytest.approx(trained.summary.test.accuracy, abs=1e-6)
    assert result.analysis is not None and len(result.analysis.per_class) == 10
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)
    [prediction] = cl.predict(trained, [image], top=3)
    assert isinstance(prediction, cl.Prediction) and len(prediction.top) == 3
    assert sum(p for _, p in prediction.top) <= 1.0 + 1e-6


def test_run_study_returns_a_study_with_results_and_tables(study):
    assert isinstance(study, cl.Study) and study.name == "api-study"
    assert study.counts == {"finished": 4}
    frame = study.results
    assert len(frame) == 4 and set(frame["status"]) == {"finished"}
    [table] = study.tables()
    assert table.factor == "train.lr" and [r["n"] for r in table.rows] == [2, 2]
    assert set(study.runs) == {c.name for c in study.cells}
    assert "| value |" in study.table("markdown") and study.table("csv").startswith("factor,")


def test_a_study_shows_its_tables_in_jupyter(study):
    page = study._repr_html_()
    assert "<table>" in page and "train.lr" in page and "★" in page


def test_estimate_study_plans_without_running(tmp_path):
    estimate = cl.estimate_study(STUDY, tmp_path / "planned")
    assert isinstance(estimate, cl.StudyEstimate) and len(estimate.cells) == 4
    assert all(c.state == "pending" and c.train_images > 0 and c.seconds > 0 for c in estimate.cells)
    assert not any((tmp_path / "planned").glob("*/seed=*"))


def test_compare_select_and_report_a_study(study, tmp_path):
    comparison = cl.compare([study])
    assert comparison.results and comparison.intervals == []
    selection = cl.select([study], {"accuracy": 1.0}, plot=tmp_path / "figures")
    assert selection.selected is selection.ranked[0] and len(selection.ranked) == 2
    assert sorted(p.name for p in selection.figures) == ["pareto-latency.png", "pareto-latency.svg",
                                                         "pareto-size.png", "pareto-size.svg"]
    written = cl.report([study], tmp_path / "report")
    assert written.html.exists() and written.markdown.exists() and written.figures > 0


def test_compare_two_runs_gives_their_wilson_intervals(study):
    first, second = list(study.runs.values())[:2]
    comparison = cl.compare([first, second])
    assert [i.path for i in comparison.intervals] == [first.path, second.path]
    assert all(i.low <= i.accuracy <= i.high for i in comparison.intervals)
    assert comparison.results[0].kind == "mcnemar"


def test_add_data_puts_a_real_archive_in_the_data_home():
    from realdata import need

    from realdata import SHARED_DATA

    archive = need(SHARED_DATA / "cifar10" / "cifar-10-python-subset.tar.gz")
    added = cl.add_data("cifar10", archive)
    assert added and all(p.exists() for p in added)
    dataset = cl.load_dataset("cifar10", download=False)
    assert dataset.num_classes == 10 and len(dataset["train"]) == 10_000


def test_crosseval_a_run_on_its_own_data(trained):
    result = cl.crosseval([trained], "digits")
    assert len(result.cells) == 1 and result.cells[0].data == "digits"
    assert list(result.matrix().columns) == ["digits"]
