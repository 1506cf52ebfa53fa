"""`cnnlab train`, `evaluate` and `predict`, in-process with typer's CliRunner, on scikit-learn's digits."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import assert_one_line_error, table_row
from PIL import Image

from cnnlab.config import FLAGS
from cnnlab.data import load_dataset, prepare_splits
from cnnlab.engine.inference import background, load_run, read_image
from cnnlab.errors import ConfigError
from cnnlab.experiments.run import train_run
from cnnlab.runfolder import RunFolder

TRAIN = ["--data", "digits", "--model", "lenet5", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished LeNet-5 run on digits (about 88 % accuracy) and the digits splits it used."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("cli-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        config = {"data": "digits", "model": "lenet5", "train": {"epochs": 6, "lr": 0.01, "threads": 1}}
        result = train_run(config, tmp_path_factory.mktemp("trained") / "run", progress=False)
        dataset = prepare_splits(load_dataset("digits"), val=0.1)
    return result, dataset


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A copy of the finished run, for commands that write into it."""
    return Path(shutil.copytree(trained[0].path, tmp_path / "run"))


# ---- train ------------------------------------------------------------------------------------------------


def test_every_flag_and_key_value_override_lands_in_config_yaml(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--data", "digits", "--model", "lenet5", "--epochs", 2, "--batch-size", 64,
                 "--optimizer", "sgd", "--lr", 0.05, "--weight-decay", 1e-4, "--schedule", "cosine",
                 "--loss", "focal", "--val", 100, "--subset", 0.5, "--seed", 3, "--threads", 1, "--device", "cpu",
                 "--no-compile", "train.momentum=0.8", "model.activation=relu", "augment.rotation=5",
                 "train.warmup_epochs=0.5", "--out", out, "--quiet")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    expected = {"data.name": "digits", "model.name": "lenet5", "train.epochs": 2, "train.batch_size": 64,
                "train.optimizer": "sgd", "train.lr": 0.05, "train.weight_decay": 1e-4, "train.schedule": "cosine",
                "train.loss": "focal", "data.val": 100, "data.subset": 0.5, "train.seed": 3, "train.threads": 1,
                "train.device": "cpu", "train.compile": False}
    assert set(expected) == set(FLAGS)  # every documented flag is checked here
    for key, value in expected.items():
        section, name = key.split(".")
        assert saved[section][name] == value and type(saved[section][name]) is type(value), key
    assert saved["train"]["momentum"] == 0.8 and saved["model"]["activation"] == "relu"
    assert saved["augment"]["rotation"] == 5.0 and saved["train"]["warmup_epochs"] == 0.5
    assert RunFolder(out).read_summary()["sizes"] == {"val": 100, "test": 360}
    assert result.stderr == ""  # --quiet


def test_a_run_file_plus_overrides(cli, tmp_path):
    run_file = tmp_path / "run.yaml"
    run_file.write_text("data: digits\nmodel: {name: rescnn, stem: 8, widths: [8, 16]}\n"
                        "train: {epochs: 1, lr: 0.01, threads: 1, batch_size: 256}\n")
    out = tmp_path / "run"
    # applied in order: the file, then flags, then key=value (so train.lr=0.02 beats --lr 0.05)
    result = cli("train", "-c", run_file, "train.lr=0.02", "--lr", 0.05, "--epochs", 2, "model.dropout=0.1",
                 "--out", out, "-q")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"] == {"name": "rescnn", "stem": 8, "widths": [8, 16], "dropout": 0.1}
    assert (saved["train"]["lr"], saved["train"]["epochs"], saved["train"]["batch_size"]) == (0.02, 2, 256)
    assert saved["data"]["name"] == "digits"
    assert len(RunFolder(out).read_metrics()) == 2


def test_progress_goes_to_stderr_and_the_results_table_to_stdout(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("train", *TRAIN, "--epochs", 2, "--out", out)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
    assert re.search(r"val_acc \d+\.\d\d%", epoch_lines[0])
    assert "epoch 1/2" not in result.stdout
    summary = RunFolder(out).read_summary()
    for split in ("val", "test"):
        row = table_row(result.stdout, split)
        assert row[1] == f"{summary[split]['accuracy']:.2%}" and row[2] == f"{summary[split]['loss']:.4f}"
    words = " ".join(result.stdout.split())  # the table's title may wrap
    assert f"lenet5 on digits (best epoch {summary['best_epoch']} of 2, chosen on validation)" in words
    assert f"run folder {out}\n" in result.stdout  # a path is never wrapped


def test_resume_of_a_finished_run_prints_its_table(cli, run_copy):
    before = {p.name: p.stat().st_mtime_ns for p in run_copy.iterdir()}
    result = cli("train", "--out", run_copy, "--resume", "-q")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    summary = RunFolder(run_copy).read_summary()
    assert table_row(result.stdout, "test")[1] == f"{summary['test']['accuracy']:.2%}"
    assert {p.name: p.stat().st_mtime_ns for p in run_copy.iterdir()} == before


def test_resume_with_another_setting_is_a_one_line_error(cli, run_copy):
    result = cli("train", "--out", run_copy, "--resume", "--lr", 0.5)
    assert_one_line_error(result, "these settings differ: train.lr;")


def test_resume_without_out_is_a_one_line_error(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("train", "--resume")
    assert_one_line_error(result, "--resume needs the run folder: cnnlab train --out RUN --resume")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, fragments", [
    (["train.lrr=0.1"], ["unknown config key 'train.lrr'", "did you mean train.lr"]),
    (["train.lr=-1"], ["'train.lr' setting must be greater than 0. Got -1 instead."]),
    (["--epochs", "0"], ["'train.epochs' setting must be greater than or equal to 1"]),
    (["--optimizer", "adm"], ["'train.optimizer' setting must be", "'adam'"]),
    (["--model", "lenet6"], ["unknown model 'lenet6'", "lenet5"]),
    (["model.widths=[8]"], ["widths"]),
    (["augment.flip=true"], ["augment.flip is refused for digits"]),
    (["--data", "kmnist"], ["dataset 'kmnist' is not on this machine"]),
    (["train.lr"], ["'train.lr' is not key=value"]),
    (["-c", "missing.yaml"], ["missing.yaml: cannot read"]),
])
def test_bad_input_is_a_one_line_error_and_creates_no_folder(cli, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    result = cli("train", *TRAIN, "--epochs", 1, *args, "--out", tmp_path / "run")
    assert_one_line_error(result, *fragments)
    assert list(tmp_path.iterdir()) == []  # neither the run folder nor runs/


def test_an_existing_run_folder_is_a_one_line_error(cli, run_copy):
    result = cli("train", *TRAIN, "--epochs", 1, "--out", run_copy)
    assert_one_line_error(result, f"{run_copy} already holds a run (finished)", "--resume")


# ---- evaluate ---------------------------------------------------------------------------------------------


def test_evaluate_prints_the_accuracy_and_rewrites_the_same_predictions(cli, run_copy):
    folder = RunFolder(run_copy)
    saved = folder.read_predictions()
    summary = folder.read_summary()
    (run_copy / "predictions.npz").unlink()
    result = cli("evaluate", run_copy)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert f"{run_copy} on digits test (360 images)" in " ".join(result.stdout.split())
    row = table_row(result.stdout, f"{summary['test']['accuracy']:.2%}")
    assert row[1] == f"{summary['test']['loss']:.4f}" and row[2] == f"{summary['test']['macro_f1']:.4f}"
    assert re.fullmatch(r"[\d,]+ img/s \(cpu, batch 1024\)", row[4]), row
    assert f"predictions: {run_copy / 'predictions.npz'}\n" in result.stdout
    again = folder.read_predictions()
    for split in ("val", "test"):
        np.testing.assert_array_equal(again[split].logits, saved[split].logits)
        np.testing.assert_array_equal(again[split].indices, saved[split].indices)
        assert again[split].sha256 == saved[split].sha256


def _image_folder(root: Path, classes, per_class_train: int = 10, per_class_test: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


def test_evaluate_on_data_with_other_classes_is_a_one_line_error(cli, run_copy, tmp_path):
    other = _image_folder(tmp_path / "letters", ["a", "b", "c"])
    result = cli("evaluate", run_copy, "--data", f"folder:{other}")
    assert_one_line_error(result, "has 3 classes (a, b, c) but the run was trained on 10 (0, 1, 2, 3, 4, …)",
                          "same classes")
    assert not list(run_copy.glob("predictions-*.npz"))


def test_evaluate_on_other_data_with_the_same_classes_writes_its_own_predictions(cli, run_copy, tmp_path):
    other = _image_folder(tmp_path / "noise", [str(i) for i in range(10)], per_class_test=3)
    before = (run_copy / "predictions.npz").read_bytes()
    result = cli("evaluate", run_copy, "--data", f"folder:{other}")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "test (30 images)" in result.stdout
    written = list(run_copy.glob("predictions-folder_*.npz"))
    assert len(written) == 1
    assert set(RunFolder(run_copy).read_predictions(written[0].name)) == {"test"}
    assert (run_copy / "predictions.npz").read_bytes() == before


def test_evaluate_a_folder_that_is_not_a_run(cli, tmp_path):
    result = cli("evaluate", tmp_path)
    assert_one_line_error(result, str(tmp_path), "is not a run folder", "no config.yaml")


# ---- predict -----------------------------------------------------------------------------------------------


def _confident_test_image(trained) -> np.ndarray:
    """The digits test image the run is surest of (1 x 8 x 8 uint8), so resampling cannot change its class,
    among those with a clear dark border (a digit touching the frame has no background to detect)."""
    result, dataset = trained
    images = dataset["test"].images
    logits = result.folder.read_predictions()["test"].logits
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = np.where([background(image[None]) == "dark" for image in images], top2[:, 1] - top2[:, 0], -np.inf)
    return images[int(np.argmax(margin))]


def test_predict_inverts_a_light_background_image_and_agrees_with_the_model(cli, trained, tmp_path):
    result, _ = trained
    image = _confident_test_image(trained)
    big = np.kron(255 - image[0], np.ones((4, 4), dtype=np.uint8))  # dark on light, 32 x 32
    png = tmp_path / "digit.png"
    Image.fromarray(big).save(png)

    run = load_run(result.path)
    logits, _, _ = run.trainer.predict_logits(torch.from_numpy(image[None]))
    expected = torch.softmax(logits, 1)[0]
    top_class = str(int(expected.argmax()))

    output = cli("predict", result.path, png, "--top", 3)
    assert output.exit_code == 0, (output.stdout, output.stderr)
    lines = output.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{png}: ")
    ranked = re.findall(r"(\S+) (\d+\.\d)%", lines[0].split(": ", 1)[1])
    assert len(ranked) == 3
    assert ranked[0][0] == top_class
    probabilities = [float(p) for _, p in ranked]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 100.05
    assert probabilities[0] == pytest.approx(100 * float(expected.max()), abs=5)

    plain = cli("predict", result.path, png, "--top", 3, "--invert", "no")  # the light background, as is
    assert plain.exit_code == 0 and plain.stdout != output.stdout


def test_read_image_inverts_only_against_the_training_background(trained, tmp_path):
    image = _confident_test_image(trained)[0]
    light = tmp_path / "light.png"
    Image.fromarray(np.kron(255 - image, np.ones((4, 4), dtype=np.uint8))).save(light)
    back = read_image(light, 1, (8, 8), "auto", "dark")
    assert back.shape == (1, 8, 8) and back.dtype == np.uint8
    assert np.abs(back[0].astype(int) - image).mean() < 16  # the original, up to the resampling
    assert np.array_equal(read_image(light, 1, (8, 8), "no", "dark"), 255 - back)
    assert np.array_equal(read_image(light, 1, (8, 8), "auto", "light"), 255 - back)  # same background: kept
    assert np.array_equal(read_image(light, 1, (8, 8), "auto", "mixed"), 255 - back)
    assert read_image(light, 3, (8, 8), "auto", "dark").shape == (3, 8, 8)


def test_background_of_image_sets(trained):
    _, dataset = trained
    images = dataset["test"].images
    assert background(images) == "dark"
    assert background(255 - images) == "light"
    half = images.copy()
    half[..., :4] = 255 - half[..., :4]  # left half light, right half dark
    assert background(half) == "mixed"
    assert background(np.full((4, 1, 8, 8), 128, dtype=np.uint8)) == "mixed"


def test_predict_several_files_and_top_larger_than_the_classes(cli, trained, tmp_path):
    result, dataset = trained
    files = []
    for i in range(2):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(dataset["test"].images[i, 0]).save(files[-1])
    output = cli("predict", result.path, *files, "--top", 20)
    assert output.exit_code == 0, (output.stdout, output.stderr)
    lines = output.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(f) for f in files]
    assert all(len(re.findall(r"\d+\.\d%", line)) == 10 for line in lines)


def test_predict_a_file_that_is_not_an_image_is_a_one_line_error(cli, trained, tmp_path):
    result, _ = trained
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    assert_one_line_error(cli("predict", result.path, text), f"{text}: cannot read it as an image")
    assert_one_line_error(cli("predict", result.path, tmp_path / "missing.png"), "missing.png: no such image file")
    assert_one_line_error(cli("predict", result.path, text, "--top", 0), "'--top' parameter of predict must be")


def test_predict_bad_invert_value(trained, tmp_path):
    result, dataset = trained
    png = tmp_path / "x.png"
    Image.fromarray(dataset["test"].images[0, 0]).save(png)
    with pytest.raises(ConfigError, match="'--invert' parameter of predict must be auto, yes or no. Got 'maybe' instead."):
        read_image(png, 1, (8, 8), "maybe", "dark")
