"""How failures surface: the CLI's one-line handler, the API-level checks behind the messages, figures
written where they are said to be, text drawn literally, and reports moved into place whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.errors import CnnlabError, ConfigError, DataError
from cnnlab.runfolder import RunError

MATH_NAMES = ["$x^", "a$b$c", "$x^$", "$\\foo$"]  # the last two are invalid mathtext


def one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return result.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from cnnlab.experiments.run import train_run

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("failures-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        config = {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "threads": 1}}
        return train_run(config, tmp_path_factory.mktemp("failures") / "run", progress=False).path


@pytest.fixture(scope="module")
def math_folder(tmp_path_factory) -> Path:
    """folder: data whose class names matplotlib would read as mathtext."""
    root = tmp_path_factory.mktemp("math-classes")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in MATH_NAMES:
            (root / split / name).mkdir(parents=True)
            for i in range(10):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


# ---- the CLI's handler ------------------------------------------------------------------------------------


class Stopped(CnnlabError):
    exit_code = 130


class Interrupted(KeyboardInterrupt):
    exit_code = 130


@pytest.mark.parametrize("raised, fragments, code", [
    (PermissionError(13, "Permission denied", "/data/raw"), ["/data/raw: permission denied", "permissions"], 2),
    (IsADirectoryError(21, "Is a directory", "/tmp/x"), ["/tmp/x: is a directory"], 2),
    (OSError(28, "No space left on device"), ["no space left on device", "free some space"], 2),
    (RuntimeError("boom\nsecond line"), ["unexpected RuntimeError: boom second line", "--traceback"], 2),
    (Stopped("stopped; run the same command again to resume"), ["stopped; run the same"], 130),
    (Interrupted("interrupted at epoch 3; run the same command again to resume"), ["interrupted at epoch 3"], 130),
])
def test_every_failure_is_one_line(cli, monkeypatch, raised, fragments, code):
    import cnnlab.data

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(cnnlab.data, "load_dataset", fail)
    result = cli("data", "download", "mnist")
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    traced = cli("--traceback", "data", "download", "mnist")
    assert traced.exit_code != 0 and "unexpected" not in traced.stderr
    if not isinstance(raised, KeyboardInterrupt):  # click turns those into an exit of its own
        assert isinstance(traced.exception, type(raised))  # the trace is not swallowed


def test_keyboard_interrupt_is_not_swallowed(cli, monkeypatch):
    import cnnlab.data

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cnnlab.data, "load_dataset", interrupt)
    result = cli("data", "download", "mnist")
    assert "unexpected" not in result.stderr
    assert result.exit_code != 0 and result.exit_code != 2


def test_a_bad_flag_is_one_line(cli):
    assert "--per-class" in one_line(cli("data", "show", "digits", "--per-class", 0))
    assert "No such command 'trian'" in one_line(cli("trian"))


# ---- runs whose files disagree ----------------------------------------------------------------------------


def test_weights_of_another_model_name_the_file_and_tensors(run, tmp_path):
    from cnnlab.engine.inference import load_run

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    spec = json.loads((copy / "model.json").read_text())
    spec["options"]["pool"] = "max"  # same shapes: still loads
    (copy / "model.json").write_text(json.dumps(spec))
    load_run(copy)
    from safetensors.numpy import load_file, save_file

    state = load_file(str(copy / "model.safetensors"))
    first = next(iter(state))
    state[first] = np.concatenate([state[first], state[first]])
    save_file(state, str(copy / "model.safetensors"))
    with pytest.raises(RunError, match=r"model\.safetensors does not fit .*inconsistent") as info:
        load_run(copy)
    assert first in str(info.value)


def test_class_names_must_match_the_head(run, tmp_path):
    from cnnlab.engine.inference import load_run

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    spec = json.loads((copy / "model.json").read_text())
    spec["classes"] = spec["classes"][:7]
    (copy / "model.json").write_text(json.dumps(spec))
    with pytest.raises(RunError, match=r"model\.json lists 7 class names but its model has 10 outputs"):
        load_run(copy)


# ---- images -----------------------------------------------------------------------------------------------


def test_huge_images_are_refused_from_their_header(tmp_path):
    from cnnlab.engine.inference import MAX_IMAGE_PIXELS, read_image

    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # above Pillow's own limit: refused at open
    large = tmp_path / "large.png"
    Image.new("P", (8000, 8000)).save(large)  # below Pillow's limit, above ours
    assert 8000 * 8000 > MAX_IMAGE_PIXELS
    for path, size in ((huge, "400 megapixels"), (large, "8000×8000")):
        with pytest.raises(DataError, match="megapixels") as info:
            read_image(path, 1, (8, 8), "auto", "dark")
        assert str(path) in str(info.value) and size in str(info.value)


# ---- split sizes name what the user typed -----------------------------------------------------------------


def test_run_sizes_are_named_by_their_config_keys():
    from cnnlab.data import load_dataset, prepare_splits, stratified_subset

    digits = load_dataset("digits")
    with pytest.raises(ConfigError, match=r"data\.subset \(--subset\) must be a count from 1 to 1,292"):
        prepare_splits(digits, subset=100_000)
    with pytest.raises(ConfigError, match=r"^data\.val \(--val\)"):
        prepare_splits(digits, val=1.5)
    with pytest.raises(DataError, match=r"data\.carve_from: digits has no 'validation' split"):
        prepare_splits(digits, carve_from="validation")
    with pytest.raises(ConfigError, match=r"^The 'size' parameter"):  # the function's own parameter
        stratified_subset(digits["train"], 100_000)


# ---- figures ----------------------------------------------------------------------------------------------


def test_show_and_hist_write_where_they_say(cli, tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    for command, name in (("show", "grid.png"), ("hist", "hist.png")):
        result = cli("data", command, "digits", "-o", folder)
        assert result.exit_code == 0, result.stderr
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
        assert f"wrote {folder / name}" in result.stdout
    result = cli("data", "hist", "digits", "-o", tmp_path / "counts")
    assert (tmp_path / "counts.png").exists() and f"wrote {tmp_path / 'counts.png'}" in result.stdout
    result = cli("data", "show", "digits", "-o", tmp_path / "grid.svg")
    assert (tmp_path / "grid.svg").read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counts.png", "figures", "grid.svg"]  # no temporary files


def test_unsupported_format_fails_before_loading(cli, tmp_path):
    message = one_line(cli("data", "show", "no-such-dataset", "-o", tmp_path / "grid.xyz"))
    assert "grid.xyz" in message and ".png" in message


def test_class_names_are_drawn_literally(cli, math_folder, tmp_path):
    from cnnlab.analysis import plots
    from cnnlab.analysis.metrics import per_class_table

    for command in ("show", "hist"):
        result = cli("data", command, f"folder:{math_folder}", "-o", tmp_path / f"{command}.svg")
        assert result.exit_code == 0, result.stderr
        svg = (tmp_path / f"{command}.svg").read_text()
        for name in ("$x^$", "a$b$c"):
            assert name in svg  # the text itself, not typeset maths
    labels, predicted = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0])
    matrix = np.ones((4, 4))
    figures = [plots.confusion_heatmap(matrix, MATH_NAMES),
               plots.per_class_accuracy(per_class_table(labels, predicted, MATH_NAMES)),
               plots.misclassified_gallery(np.zeros((4, 1, 8, 8), np.uint8), labels, predicted, MATH_NAMES),
               plots.learning_curves({"$x^$": [{"epoch": 1, "train_loss": 1, "val_loss": 1, "train_acc": 0.5,
                                                "val_acc": 0.5}]}),
               plots.pareto_scatter([{"label": "$\\foo$", "ms": 1, "acc": 0.5}, {"label": "b", "ms": 500, "acc": 0.9}],
                                    "ms", "acc")]
    for i, figure in enumerate(figures):
        plots.save_figure(figure, tmp_path / f"figure-{i}")


def test_study_bars_draw_values_literally(tmp_path):
    from cnnlab.analysis import plots
    from cnnlab.analysis.stats import mean_ci
    from cnnlab.analysis.study_table import FactorTable

    rows = [{"value": "$x^$", "test_accuracy": mean_ci([0.5, 0.6]), "best": True},
            {"value": "a$b$c", "test_accuracy": mean_ci([0.4, 0.5])}]
    plots.save_figure(plots.study_bars(FactorTable("$\\foo$", rows, "$x^$", "verdict")), tmp_path / "bars")


# ---- reports ----------------------------------------------------------------------------------------------


def test_report_replaces_an_earlier_report_only_when_done(cli, run, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("earlier")
    (out / "figures").mkdir()
    (out / "figures" / "stale.png").write_text("from the earlier report")
    broken = Path(shutil.copytree(run, tmp_path / "broken"))
    (broken / "predictions.npz").write_bytes(b"junk")
    assert "predictions.npz" in one_line(cli("report", broken, "-o", out))
    assert (out / "report.html").read_text() == "earlier" and (out / "figures" / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "report"]  # no staging folder left
    result = cli("report", run, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "<!doctype html>" in (out / "report.html").read_text() and not (out / "figures" / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "report"]


def test_report_refuses_to_replace_a_folder_that_is_not_a_report(cli, run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    message = one_line(cli("report", run, "-o", tmp_path))
    assert "not a cnnlab report" in message
    assert (tmp_path / "notes.txt").read_text() == "mine"
