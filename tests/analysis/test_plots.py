"""Report figures (analysis/plots.py) on a real tiny run — LeNet-5 on scikit-learn's digits, two
epochs, trained once for the module (about 2 s) — and on hand-made EMNIST-sized inputs; every figure
is saved as PNG and SVG and the files are checked. pareto_front is checked on hand-made cases."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from cnnlab.analysis import plots
from cnnlab.analysis.metrics import confusion, per_class_table, read_run_predictions
from cnnlab.analysis.plots import (
    HIGHLIGHT,
    confusion_heatmap,
    learning_curves,
    misclassified_gallery,
    pareto_front,
    pareto_scatter,
    per_class_accuracy,
    save_figure,
    study_bars,
)
from cnnlab.analysis.stats import mean_ci
from cnnlab.analysis.study_table import FactorTable
from cnnlab.runfolder import RunFolder, images_sha256

SRC = Path(__file__).resolve().parents[2] / "src"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
EMNIST_BYCLASS = ([str(d) for d in range(10)] + [chr(ord("A") + i) for i in range(26)]
                  + [chr(ord("a") + i) for i in range(26)])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run with its test predictions, and the digits test images they index."""
    from cnnlab.data import load_dataset
    from cnnlab.experiments.run import train_run

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("plots-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        result = train_run({"data": "digits", "model": "lenet5", "train": {"epochs": 2, "threads": 1}},
                           tmp_path_factory.mktemp("plots") / "run", progress=False)
        test = load_dataset("digits", progress=False)["test"]
    torch.set_num_threads(threads)
    source = read_run_predictions(result.path)
    # the saved indices are positions in the dataset's file, not in the split
    positions = test.items if test.items is not None else np.arange(len(test))
    where = {int(p): k for k, p in enumerate(positions)}
    images = test.images[[where[int(i)] for i in source.predictions.indices]]
    assert images_sha256(images) == source.predictions.sha256  # the very images the run evaluated
    return {"path": result.path, "source": source, "images": images}


def saved(fig, folder: Path, name: str = "figure") -> tuple[Path, ET.Element]:
    """Save both formats and check them: a PNG 150 dpi in size, an SVG that parses."""
    paths = save_figure(fig, folder / name)
    assert paths == [folder / f"{name}.png", folder / f"{name}.svg"]
    png, svg = paths
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    inches = fig.get_size_inches()
    assert abs(width - inches[0] * 150) <= 1 and abs(height - inches[1] * 150) <= 1
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    return png, root


def svg_texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()).strip() for node in root.iter(f"{SVG}text")]


def tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


# ---- import ---------------------------------------------------------------------------------------


def test_importing_the_module_does_not_import_matplotlib_or_torch():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    code = ("import cnnlab.analysis.plots, sys; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib'; assert 'torch' not in sys.modules, 'torch'")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_figures_do_not_go_through_pyplot(run):
    fig = learning_curves({"run": RunFolder(run["path"]).read_metrics()})
    assert type(fig) is Figure
    assert fig.canvas.manager is None  # pyplot's figures have a manager (a window, under a GUI backend)


# ---- save_figure ----------------------------------------------------------------------------------


def test_save_figure_keeps_dots_in_the_name_and_makes_folders(run, tmp_path):
    fig = learning_curves({"run": RunFolder(run["path"]).read_metrics()})
    paths = save_figure(fig, tmp_path / "new" / "lenet5-lr0.01", formats=("png",))
    assert paths == [tmp_path / "new" / "lenet5-lr0.01.png"]
    assert paths[0].read_bytes()[:8] == PNG_SIGNATURE


def test_svg_is_reproducible(run, tmp_path):
    fig = learning_curves({"run": RunFolder(run["path"]).read_metrics()})
    first = save_figure(fig, tmp_path / "a", formats=("svg",))[0].read_bytes()
    second = save_figure(fig, tmp_path / "b", formats=("svg",))[0].read_bytes()
    assert first == second


# ---- learning curves ------------------------------------------------------------------------------


def test_learning_curves_of_a_real_run(run, tmp_path):
    rows = RunFolder(run["path"]).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    other = [{**r, "val_acc": r["val_acc"] * 0.9, "val_loss": r["val_loss"] * 1.1} for r in rows]
    fig = learning_curves({"lenet5": rows, "worse": other, "not started": []})
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("loss", "accuracy")
    assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "epoch"
    assert loss_ax.get_ylabel() and acc_ax.get_ylabel()
    assert fig.get_suptitle() == "Learning curves"
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        lines = ax.get_lines()
        assert len(lines) == 4  # two runs with epochs, training and validation each
        assert [line.get_linestyle() for line in lines] == ["-", "--", "-", "--"]
        assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color() == lines[3].get_color()
        np.testing.assert_allclose(lines[0].get_ydata(), [r[f"train_{metric}"] for r in rows])
        np.testing.assert_allclose(lines[1].get_ydata(), [r[f"val_{metric}"] for r in rows])
        np.testing.assert_allclose(lines[3].get_ydata(), [r[f"val_{metric}"] for r in other])
    legend = tick_texts(fig.legends[0].get_texts())
    assert legend == ["lenet5", "worse", "training", "validation"]
    _, root = saved(fig, tmp_path)
    assert {"lenet5", "worse", "epoch"} <= set(svg_texts(root))


def test_learning_curves_without_epochs_say_so(tmp_path):
    fig = learning_curves({"pending": []})
    for ax in fig.axes:
        assert not ax.get_lines()
        assert "no epochs recorded yet" in tick_texts(ax.texts)
    saved(fig, tmp_path)


# ---- confusion heatmap ----------------------------------------------------------------------------


def test_confusion_heatmap_of_a_real_run(run, tmp_path):
    source = run["source"]
    pred = source.predictions
    matrix = confusion(pred.labels, pred.predicted, len(source.classes))
    fig = confusion_heatmap(matrix, source.classes)
    ax, bar = fig.axes  # the matrix and its colour bar
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert ax.get_title() == "Confusion matrix (rows normalised)"
    assert bar.get_ylabel() == "share of the true class's images"
    assert tick_texts(ax.get_xticklabels()) == list(source.classes)
    assert tick_texts(ax.get_yticklabels()) == list(source.classes)
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(shown), np.diag(matrix) / matrix.sum(axis=1))
    assert not ax.lines  # digits only: no blocks to separate
    _, root = saved(fig, tmp_path)
    assert set(source.classes) <= set(svg_texts(root))


def test_confusion_heatmap_shows_the_row_normalised_matrix():
    from cnnlab.analysis.metrics import row_normalised

    counts = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 6]])
    shown = confusion_heatmap(counts, ["a", "b", "c"]).axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(shown), row_normalised(counts))
    raw = confusion_heatmap(counts, ["a", "b", "c"], normalize=False).axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(raw), counts)


def test_confusion_heatmap_labels_all_62_emnist_classes(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 4, (62, 62)) + np.eye(62, dtype=int) * 50
    matrix[61] = 0  # a class without images: its row stays 0 instead of dividing by zero
    fig = confusion_heatmap(matrix, EMNIST_BYCLASS, title="byclass")
    ax = fig.axes[0]
    assert ax.get_title() == "byclass"
    assert tick_texts(ax.get_xticklabels()) == EMNIST_BYCLASS
    assert tick_texts(ax.get_yticklabels()) == EMNIST_BYCLASS
    assert list(ax.get_xticks()) == list(range(62))
    assert all(label.get_fontsize() <= 7 for label in ax.get_xticklabels())
    shown = ax.images[0].get_array()
    assert np.all(shown[61] == 0) and np.allclose(shown[:61].sum(axis=1), 1.0)
    # digits | upper case | lower case: one horizontal and one vertical line at each switch
    positions = sorted({float(np.ravel(line.get_xdata() if i % 2 else line.get_ydata())[0])
                        for i, line in enumerate(ax.lines)})
    assert positions == [9.5, 35.5] and len(ax.lines) == 4
    _, root = saved(fig, tmp_path)
    assert set(EMNIST_BYCLASS) <= set(svg_texts(root))


def test_confusion_heatmap_of_counts_and_bad_shapes(tmp_path):
    matrix = np.array([[5, 1], [0, 3]])
    fig = confusion_heatmap(matrix, ["cat", "dog"], normalize=False)
    ax, bar = fig.axes
    np.testing.assert_array_equal(ax.images[0].get_array(), matrix)
    assert bar.get_ylabel() == "images"
    assert {"5", "1", "3"} <= set(tick_texts(ax.texts))  # small matrices carry their numbers
    saved(fig, tmp_path)
    with pytest.raises(ValueError, match="2×2"):
        confusion_heatmap(np.ones((3, 3)), ["cat", "dog"])


# ---- per-class recall -----------------------------------------------------------------------------


def test_per_class_accuracy_of_a_real_run(run, tmp_path):
    source = run["source"]
    pred = source.predictions
    table = per_class_table(pred.labels, pred.predicted, source.classes)
    fig = per_class_accuracy(table)
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() == "class" and ax.get_ylabel().startswith("recall")
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == sorted(heights)  # vertical for 10 classes, worst on the left
    expected = table.sort_values("recall", kind="stable")
    assert tick_texts(ax.get_xticklabels()) == list(expected["class"])
    np.testing.assert_allclose(heights, expected["recall"])
    below = [to_hex(p.get_facecolor()) == HIGHLIGHT.lower() for p in ax.patches]
    assert below == [r < table["recall"].mean() for r in expected["recall"]]
    saved(fig, tmp_path)


def test_per_class_accuracy_is_horizontal_for_many_classes(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    recall = rng.random(62)
    support = np.full(62, 20)
    support[5] = 0
    frame = pd.DataFrame({"class": EMNIST_BYCLASS, "support": support, "precision": recall, "recall": recall,
                          "f1": recall})
    fig = per_class_accuracy(frame)
    ax = fig.axes[0]
    widths = [patch.get_width() for patch in ax.patches]
    assert len(widths) == 61  # the class without images is left out, not shown as the worst
    assert widths == sorted(widths)
    assert "1 class without images left out" in ax.get_title()
    names = tick_texts(ax.get_yticklabels())
    assert "5" not in names and len(names) == 61
    bottom, top = ax.get_ylim()
    assert top < bottom  # the first (worst) bar is drawn on top
    assert ax.get_ylabel() == "class" and ax.get_xlabel().startswith("recall")
    saved(fig, tmp_path)


# ---- misclassified gallery ------------------------------------------------------------------------


def test_misclassified_gallery_of_a_real_run(run, tmp_path):
    source = run["source"]
    pred = source.predictions
    images, labels, predicted = run["images"], pred.labels, pred.predicted
    wrong = np.flatnonzero(labels != predicted)
    fig = misclassified_gallery(images, labels, predicted, source.classes, limit=12, columns=4)
    tiles = [ax for ax in fig.axes if ax.images]
    assert len(tiles) == min(12, len(wrong))
    if len(wrong) == 0:
        pytest.skip("the run classified every test image correctly")
    for ax, index in zip(tiles, wrong):
        assert ax.get_title() == f"{source.classes[labels[index]]} → {source.classes[predicted[index]]}"
        np.testing.assert_array_equal(ax.images[0].get_array(), images[index, 0])
    assert fig.get_suptitle().endswith(f"{len(tiles)} of {len(wrong)} errors in {len(labels)} images")
    _, root = saved(fig, tmp_path)
    assert tiles[0].get_title() in svg_texts(root)


def test_misclassified_gallery_colour_images_and_limits(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (20, 3, 6, 6), dtype=np.uint8)
    labels = np.arange(20) % 3
    predicted = labels.copy()
    predicted[[1, 4, 7, 9, 15]] = (labels[[1, 4, 7, 9, 15]] + 1) % 3
    fig = misclassified_gallery(images, labels, predicted, ["cat", "dog", "bird"], limit=4, columns=3)
    tiles = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in tiles] == ["dog → bird", "dog → bird", "dog → bird", "cat → dog"]
    np.testing.assert_array_equal(tiles[0].images[0].get_array(), images[1].transpose(1, 2, 0))
    assert len(fig.axes) == 6  # two rows of three; the spare tiles stay blank
    saved(fig, tmp_path)


def test_misclassified_gallery_without_errors_says_so(tmp_path):
    images = np.zeros((5, 1, 8, 8), np.uint8)
    labels = np.arange(5)
    fig = misclassified_gallery(images, labels, labels, list("abcde"))
    assert not any(ax.images for ax in fig.axes)
    assert any("no misclassified images" in t.get_text() for ax in fig.axes for t in ax.texts)
    assert fig.get_suptitle()
    saved(fig, tmp_path)


def test_misclassified_gallery_rejects_bad_input():
    with pytest.raises(ValueError, match="N×C×H×W"):
        misclassified_gallery(np.zeros((2, 8, 8), np.uint8), [0, 1], [1, 0], ["a", "b"])
    with pytest.raises(ValueError, match="must match"):
        misclassified_gallery(np.zeros((2, 1, 8, 8), np.uint8), [0, 1], [1], ["a", "b"])


# ---- a study factor -------------------------------------------------------------------------------


def factor_table() -> FactorTable:
    results = {"base": [0.95, 0.96, 0.955], "0.01": [0.98, 0.985, 0.982], "0.003": [0.97], "1e-5": []}
    rows = [{"value": value, "n": len(accs), "is_base": value == "base", "test_accuracy": mean_ci(accs),
             "best": value == "0.01"} for value, accs in results.items()]
    return FactorTable("train.lr", rows, "0.01", "best by validation: 0.01")


def test_study_bars(tmp_path):
    table = factor_table()
    fig = study_bars(table)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "train.lr" and ax.get_ylabel() == "test accuracy (%)"
    assert "95 % CI" in ax.get_title()
    assert tick_texts(ax.get_xticklabels()) == ["base", "★ 0.01", "0.003", "1e-5"]
    bars = ax.patches
    np.testing.assert_allclose([b.get_height() for b in bars], [95.5, 98.2333333, 97.0, 0.0], rtol=1e-6)
    colours = [to_hex(b.get_facecolor()) for b in bars]
    assert colours[1] == HIGHLIGHT.lower() and HIGHLIGHT.lower() not in colours[:1] + colours[2:]
    assert bars[1].get_hatch() and not bars[0].get_hatch()
    # error bars only where there is an interval (two values with three seeds), of the CI's half-width
    segments = ax.collections[0].get_segments()
    assert len(segments) == 2
    half = table.rows[0]["test_accuracy"].half_width * 100
    np.testing.assert_allclose(sorted(segments[0][:, 1]), [95.5 - half, 95.5 + half])
    texts = tick_texts(ax.texts)
    assert "no results" in texts and any("(1 seed)" in t for t in texts)
    assert ax.get_ylim()[0] == 0
    saved(fig, tmp_path)


def test_study_bars_can_zoom_in():
    ax = study_bars(factor_table(), y_from_zero=False).axes[0]
    low = ax.get_ylim()[0]
    assert 90 < low < 95.5 - factor_table().rows[0]["test_accuracy"].half_width * 100


# ---- Pareto front ---------------------------------------------------------------------------------


def pts(*xy):
    return [{"label": f"p{i}", "ms": x, "acc": y} for i, (x, y) in enumerate(xy)]


@pytest.mark.parametrize("points, expected", [
    ([], []),
    (pts((5, 0.9)), [0]),
    # each faster one is less accurate: all on the front, ordered from the fastest
    (pts((30, 0.99), (10, 0.95), (20, 0.97), (5, 0.90)), [3, 1, 2, 0]),
    # p1 is slower and less accurate than p0
    (pts((10, 0.95), (20, 0.90), (30, 0.99)), [0, 2]),
    # same latency: only the more accurate one; same accuracy: only the faster one
    (pts((10, 0.95), (10, 0.93), (12, 0.95), (20, 0.99)), [0, 3]),
    # exact duplicates do not dominate each other
    (pts((10, 0.95), (10, 0.95), (20, 0.90)), [0, 1]),
    (pts((10, 0.95), (10, 0.95), (20, 0.99)), [0, 1, 2]),
    # one point best on both dominates everything
    (pts((1, 0.99), (2, 0.98), (3, 0.97), (1, 0.5)), [0]),
])
def test_pareto_front(points, expected):
    assert pareto_front(points, "ms", "acc") == expected


def test_pareto_front_when_higher_x_is_better():
    points = [{"ips": 100, "acc": 0.9}, {"ips": 50, "acc": 0.95}, {"ips": 40, "acc": 0.93}, {"ips": 100, "acc": 0.8}]
    assert pareto_front(points, "ips", "acc", lower_x_is_better=False) == [0, 1]
    assert pareto_front(points, "ips", "acc", lower_x_is_better=True) == [2, 1]


def test_pareto_front_leaves_out_points_without_values():
    points = [{"ms": 10, "acc": 0.9}, {"ms": None, "acc": 0.99}, {"acc": 0.99}, {"ms": 1, "acc": math.nan},
              {"ms": 20, "acc": 0.95}]
    assert pareto_front(points, "ms", "acc") == [0, 4]


def test_pareto_front_agrees_with_brute_force():
    rng = np.random.default_rng(3)
    # few distinct values, so ties and duplicates are common
    points = [{"x": int(x), "y": int(y)} for x, y in rng.integers(0, 6, (60, 2))]
    front = pareto_front(points, "x", "y")
    for i, p in enumerate(points):
        beaten = any(q["x"] <= p["x"] and q["y"] >= p["y"] and (q["x"], q["y"]) != (p["x"], p["y"]) for q in points)
        assert (i in front) == (not beaten)
    assert [points[i]["x"] for i in front] == sorted(points[i]["x"] for i in front)


def test_pareto_scatter(tmp_path):
    points = pts((30, 0.99), (10, 0.95), (25, 0.94), (5, 0.90), (40, 0.97)) + [{"label": "broken", "ms": None}]
    fig = pareto_scatter(points, "ms", "acc", x_label="latency (ms)", y_label="test accuracy")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "latency (ms) (lower is better)"
    assert ax.get_ylabel() == "test accuracy (higher is better)"
    assert ax.get_title() == "test accuracy against latency (ms)"
    dominated, front = ax.collections
    np.testing.assert_allclose(dominated.get_offsets(), [[25, 0.94], [40, 0.97]])
    np.testing.assert_allclose(front.get_offsets(), [[5, 0.90], [10, 0.95], [30, 0.99]])
    assert front.get_sizes()[0] > dominated.get_sizes()[0]
    step = ax.get_lines()[0]
    assert step.get_drawstyle() == "steps-post"
    np.testing.assert_allclose(step.get_xdata(), [5, 10, 30])
    labels = {t.get_text(): t.get_fontweight() for t in ax.texts}
    assert set(labels) == {"p0", "p1", "p2", "p3", "p4"}
    assert labels["p1"] == "bold" and labels["p2"] == "normal"
    assert "1 point(s) without ms or acc left out" in tick_texts(ax.get_legend().get_texts())
    assert ax.get_xscale() == "linear"
    _, root = saved(fig, tmp_path)
    assert {"p0", "p4"} <= set(svg_texts(root))


def test_pareto_scatter_uses_a_log_axis_for_wide_ranges():
    points = [{"name": "tiny", "params": 1e3, "acc": 0.9}, {"name": "huge", "params": 5e6, "acc": 0.99}]
    ax = pareto_scatter(points, "params", "acc", label_key="name", lower_x_is_better=True).axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "params (lower is better)"
    assert {t.get_text() for t in ax.texts} == {"tiny", "huge"}


def test_pareto_scatter_without_usable_points(tmp_path):
    fig = pareto_scatter([{"label": "a"}], "ms", "acc")
    assert "no points with both values" in tick_texts(fig.axes[0].texts)
    saved(fig, tmp_path)


def test_module_exports():
    assert set(plots.__all__) == {"confusion_heatmap", "learning_curves", "misclassified_gallery", "pareto_front",
                                  "pareto_scatter", "per_class_accuracy", "save_figure", "study_bars"}
