"""Transfer runs end to end: a run's backbone fine-tuned on, a frozen backbone's cached features, gradual
unfreezing resumed, and bad transfer input from the command line."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from run_helpers import Interrupt, untimed  # Interrupt: Ctrl-C in the epoch after `after`

from cnnlab.engine.inference import evaluate_run
from cnnlab.errors import ConfigError
from cnnlab.experiments.run import train_run
from cnnlab.models.weights import file_sha256
from cnnlab.runfolder import RunFolder

TRAIN = {"epochs": 3, "threads": 1, "batch_size": 64, "lr": 0.01}
SOURCE = {"data": "digits", "model": {"name": "rescnn", "stem": 8, "widths": [8, 16]}, "train": TRAIN}


def frozen_on(source: str, **model) -> dict:
    return {"data": "digits", "model": {"name": "rescnn", "stem": 8, "widths": [8, 16], "pretrained": f"run:{source}",
                                         "finetune": "frozen", "head": [16], **model}, "train": TRAIN}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One data home (so one feature cache) for the module's runs."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("transfer-home")
        patch.setenv("CNNLAB_DATA", str(path))
        patch.setenv("CNNLAB_OFFLINE", "1")
        yield path


@pytest.fixture(scope="module")
def source_run(home, tmp_path_factory):
    return train_run(SOURCE, tmp_path_factory.mktemp("source") / "run", progress=False)


@pytest.fixture(scope="module")
def frozen_run(home, source_run, tmp_path_factory):
    return train_run(frozen_on(source_run.path), tmp_path_factory.mktemp("frozen") / "run", progress=False)


def test_a_runs_backbone_is_the_starting_point_and_stays_frozen(source_run, frozen_run):
    source, frozen = source_run.folder.read_weights(), frozen_run.folder.read_weights()
    backbone = {k[len("backbone."):]: v for k, v in frozen.items() if k.startswith("backbone.")}
    assert set(backbone) == {k for k in source if not k.startswith("head.3.")}  # all but the old classifier
    assert all(torch.equal(v, source[k]) for k, v in backbone.items())  # BN statistics included
    summary = frozen_run.summary
    head = 16 * 16 + 16 + 16 * 10 + 10
    assert (summary["trainable_params"], summary["frozen_params"]) == (head, summary["params"] - head)
    weights = frozen_run.folder.read_model_spec()["weights"]
    assert weights == {"source": "run", "file": str(source_run.path / "model.safetensors"),
                       "sha256": file_sha256(source_run.path / "model.safetensors"), "matched": "by name"}
    assert frozen_run.folder.read_env()["weights"] == weights


def test_the_frozen_backbone_runs_once_per_split_and_the_cache_gives_the_same_run(home, source_run, frozen_run,
                                                                                tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(home))  # the data home (and feature cache) the first run used
    first = frozen_run.summary["features"]
    assert [(e["split"], e["cached"]) for e in first] == [("train", False), ("val", False), ("test", False)]
    again = train_run(frozen_on(source_run.path), tmp_path / "again", progress=False)
    assert [e["cached"] for e in again.summary["features"]] == [True, True, True]
    assert again.summary["inference_images_per_s"] > 0  # timed again: the whole model's speed, cached or not
    assert untimed(again.folder.read_metrics()) == untimed(frozen_run.folder.read_metrics())
    assert again.summary["test"] == frozen_run.summary["test"]
    # a damaged cache file is computed again, never trusted
    for path in (home / "features").glob("*.npy"):
        path.write_bytes(path.read_bytes()[:100])
    damaged = train_run(frozen_on(source_run.path), tmp_path / "damaged", progress=False)
    assert [e["cached"] for e in damaged.summary["features"]] == [False, False, False]
    assert damaged.summary["test"] == frozen_run.summary["test"]


def test_the_kept_model_on_images_scores_what_the_head_scored_on_cached_features(frozen_run):
    scored = evaluate_run(frozen_run.path)  # the whole model, backbone and head, on the test images
    assert scored["accuracy"] == pytest.approx(frozen_run.summary["test"]["accuracy"], abs=1e-6)
    assert scored["loss"] == pytest.approx(frozen_run.summary["test"]["loss"], rel=1e-4)


def test_gradual_unfreezing_resumed_after_the_switch_equals_an_uninterrupted_run(home, source_run, tmp_path):
    config = frozen_on(source_run.path, finetune="gradual", unfreeze_epoch=1)
    whole = train_run(config, tmp_path / "whole", progress=False)
    assert "features" not in whole.summary  # the backbone trains after epoch 1: no cache
    assert whole.summary["trainable_params"] == whole.summary["params"]  # everything trains at the end
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "resumed", callbacks=[Interrupt(after=1)], progress=False)
    resumed = train_run(None, tmp_path / "resumed", resume=True, progress=False)
    assert untimed(resumed.folder.read_metrics()) == untimed(whole.folder.read_metrics())
    a, b = resumed.folder.read_weights(), whole.folder.read_weights()
    assert all(torch.equal(a[k], b[k]) for k in b)
    source = source_run.folder.read_weights()
    assert not torch.equal(b["backbone.stem.0.weight"], source["stem.0.weight"])  # unfrozen, it moved
    lrs = [row["lr"] for row in whole.folder.read_metrics()]
    assert all(math.isclose(lr, TRAIN["lr"]) for lr in lrs)  # the head's rate; the backbone's is 0.1 of it


def test_a_frozen_backbone_with_augmentation_runs_every_step_and_says_so(cli, home, source_run, tmp_path):
    result = cli("train", "--data", "digits", "--model", "rescnn", "model.stem=8", "model.widths=[8,16]",
                 f"model.pretrained=run:{source_run.path}", "model.finetune=frozen", "augment.rotation=10",
                 "--epochs", "1", "--threads", "1", "--out", tmp_path / "augmented")
    assert result.exit_code == 0, result.output
    assert "backbone runs on every step" in result.output
    assert "features" not in json.loads((tmp_path / "augmented" / "summary.json").read_text())


@pytest.mark.parametrize("overrides, needle", [
    (["model.finetune=sideways"], "finetune must be one of all, frozen, last:N"),
    (["model.pretrained=true"], "has no published pretrained weights"),
    (["model.pretrained=/nowhere/w.pth"], "does not exist"),
    (["model.head=[64]", "model.name=tv:squeezenet1_1"], "no linear classifier on pooled features"),
    (["model.pretrained=run:/nowhere"], "not a run folder"),
])
def test_bad_transfer_input_is_one_line_and_exit_2_with_nothing_written(cli, tmp_path, overrides, needle):
    out = tmp_path / "run"
    result = cli("train", "--data", "digits", "--model", "rescnn", *overrides, "--epochs", "1", "--out", out)
    assert result.exit_code == 2, result.output
    assert needle in result.output and not out.exists()


def test_a_run_without_weights_is_refused_as_a_source(cli, tmp_path, home):
    (tmp_path / "empty").mkdir()
    result = cli("train", "--data", "digits", "--model", "rescnn", f"model.pretrained=run:{tmp_path / 'empty'}",
                 "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "is an empty run, not a finished one" in result.output
    assert not (tmp_path / "run").exists()


def test_predictions_of_a_frozen_run_are_the_head_on_the_features(frozen_run):
    predictions = frozen_run.folder.read_predictions()["test"]
    summary = frozen_run.summary["test"]
    assert np.mean(predictions.logits.argmax(1) == predictions.labels) == pytest.approx(summary["accuracy"], abs=1e-6)
    assert isinstance(RunFolder(frozen_run.path).read_summary()["inference_images_per_s"], float)


def test_the_cache_is_keyed_by_the_models_options_too(home, source_run, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(home))
    relu = train_run(frozen_on(source_run.path), tmp_path / "relu", progress=False)
    tanh = train_run(frozen_on(source_run.path, activation="tanh"), tmp_path / "tanh", progress=False)
    assert [e["cached"] for e in tanh.summary["features"]] == [False, False, False]  # other features
    assert evaluate_run(tanh.path)["accuracy"] == pytest.approx(tanh.summary["test"]["accuracy"], abs=1e-6)
    assert tanh.summary["test"] != relu.summary["test"]


def test_an_edited_swapped_or_linked_cache_file_is_never_trusted(source_run, frozen_run, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "home"))  # a cache holding this config's three files only
    train_run(frozen_on(source_run.path), tmp_path / "warm", progress=False)
    files = sorted((tmp_path / "home" / "features").glob("*.npy"))
    shapes = [np.load(f).shape for f in files]
    np.save(files[0], np.zeros(shapes[0], np.float32))  # same shape, other values
    np.save(files[1], np.zeros((shapes[1][0], 7), np.float32))  # another width
    files[2].unlink()
    files[2].symlink_to("/etc/hostname")  # a link in the cache's place
    again = train_run(frozen_on(source_run.path), tmp_path / "again", progress=False)
    assert [e["cached"] for e in again.summary["features"]] == [False, False, False]
    assert again.summary["test"] == frozen_run.summary["test"]


def test_resuming_a_frozen_run_whose_weights_file_changed_is_refused(tmp_path, source_run):
    weights = tmp_path / "start.pth"
    state = {k: v for k, v in source_run.folder.read_weights().items()}
    torch.save(state, weights)
    config = {**frozen_on(source_run.path), "model": {**frozen_on(source_run.path)["model"], "pretrained": str(weights)}}
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "run", callbacks=[Interrupt(after=1)], progress=False)
    torch.save({k: v * 2 if v.is_floating_point() else v for k, v in state.items()}, weights)
    with pytest.raises(ConfigError, match="changed since .* started .sha256"):
        train_run(None, tmp_path / "run", resume=True, progress=False)


@pytest.mark.parametrize("overrides, needle", [
    (["model.finetune=gradual", "model.unfreeze_epoch=3"], "the backbone would never train"),
    (["model.pretrained=false", "model.weights=/etc/hostname"], "name two sources"),
    (["model.pretrained=/etc/hostname"], "cnnlab reads .safetensors, .pth, .pt, .bin files"),
])
def test_transfer_settings_that_cannot_mean_what_they_say_are_refused(cli, tmp_path, source_run, overrides, needle):
    out = tmp_path / "run"
    result = cli("train", "--data", "digits", "--model", "rescnn", "model.stem=8", "model.widths=[8,16]",
                 *overrides, "--epochs", "3", "--out", out)
    assert result.exit_code == 2 and re.search(needle, result.output), result.output
    assert not out.exists()


def test_an_unfinished_run_is_no_starting_point(cli, tmp_path, source_run):
    with pytest.raises(KeyboardInterrupt):
        train_run(SOURCE, tmp_path / "unfinished", callbacks=[Interrupt(after=1)], progress=False)
    result = cli("train", "--data", "digits", "--model", "rescnn", f"model.pretrained=run:{tmp_path / 'unfinished'}",
                 "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "is an unfinished run, not a finished one" in result.output


@pytest.mark.parametrize("damage, needle", [
    (lambda s: {k: v * float("nan") if v.is_floating_point() else v for k, v in s.items()}, "NaN or infinite"),
    (lambda s: {k: v.to(torch.int32) if v.is_floating_point() else v for k, v in s.items()}, "not floating-point"),
])
def test_weights_that_cannot_be_weights_are_refused_before_anything_runs(cli, tmp_path, source_run, damage, needle):
    path = tmp_path / "bad.pth"
    torch.save(damage(source_run.folder.read_weights()), path)
    study = tmp_path / "study.yaml"
    study.write_text(f"name: bad\nbase: {{data: digits, model: {{name: rescnn, stem: 8, widths: [8, 16], "
                     f"pretrained: {path}, finetune: frozen}}, train: {{epochs: 1, threads: 1}}}}\nseeds: 1\n")
    result = cli("study", "run", study, "--out", tmp_path / "out", "-q")
    assert result.exit_code == 2 and needle in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_text_file_named_pth_is_one_line(cli, tmp_path):
    (tmp_path / "hello.pth").write_text("hello\n")
    result = cli("train", "--data", "digits", "--model", "rescnn", f"model.pretrained={tmp_path / 'hello.pth'}",
                 "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "holds more than tensors, or is not a PyTorch file" in result.output
    assert "unexpected" not in result.output and not (tmp_path / "run").exists()
