"""The run-folder format (runfolder.py): status, metrics, predictions, summary, weights, and the way the
files are written (atomically, with the user's umask)."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.runfolder import (
    CHECKPOINT,
    CONFIG,
    METRIC_COLUMNS,
    METRICS,
    PREDICTIONS,
    SUMMARY,
    WEIGHTS,
    Predictions,
    RunError,
    RunFolder,
    atomic_write,
    images_sha256,
)


def _row(epoch: int, **changes) -> dict:
    row = {"epoch": epoch, "lr": 1e-3 / epoch, "train_loss": 2.0 / epoch, "train_acc": 0.1 * epoch,
           "val_loss": 2.1 / epoch, "val_acc": 0.09 * epoch, "seconds": 0.5 + epoch / 7, "images_per_s": 1e4 / 3}
    row.update(changes)
    return row


def _finished(folder: RunFolder, status: str = "finished") -> None:
    folder.write_config({"data": {"name": "digits"}})
    folder.write_summary({"status": status, "error": None if status == "finished" else "boom"})


# ---- status ------------------------------------------------------------------------------------------


def test_status_moves_from_empty_to_unfinished_to_finished(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert folder.status == "empty" and not folder.has_content()  # not even created
    folder.path.mkdir()
    assert folder.status == "empty" and not folder.has_content()
    folder.write_config({"data": {"name": "digits"}})
    assert folder.status == "unfinished" and folder.has_content()
    folder.write_summary({"status": "finished", "error": None})
    assert folder.status == "finished"


def test_failed_status_and_a_summary_without_status_count_as_failed(tmp_path):
    folder = RunFolder(tmp_path)
    _finished(folder, "failed")
    assert folder.status == "failed"
    (tmp_path / SUMMARY).write_text('{"error": "lost"}')
    assert folder.status == "failed"


def test_summary_refuses_an_unknown_status_and_writes_nothing(tmp_path):
    folder = RunFolder(tmp_path)
    for bad in ("done", None, "unfinished"):
        with pytest.raises(ValueError, match="finished"):
            folder.write_summary({"status": bad})
    assert not (tmp_path / SUMMARY).exists()


def test_summary_writes_nan_and_inf_as_null_strict_json(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_summary({"status": "finished", "test": {"loss": math.nan, "top5": math.inf, "accuracy": 0.5},
                          "params": np.int64(7), "best": np.float32(0.25)})
    text = (tmp_path / SUMMARY).read_text()
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert strict["test"] == {"loss": None, "top5": None, "accuracy": 0.5}
    assert strict["params"] == 7 and strict["best"] == 0.25
    assert folder.read_summary() == strict


def test_require_names_the_missing_file_and_the_fix(tmp_path):
    with pytest.raises(RunError, match="no such run folder"):
        RunFolder(tmp_path / "nothing").require(CONFIG)
    folder = RunFolder(tmp_path)
    folder.write_config({"data": {"name": "digits"}})
    with pytest.raises(RunError, match=f"{SUMMARY} is missing") as info:
        folder.read_summary()
    assert "--resume" in str(info.value) and str(tmp_path) in str(info.value)


# ---- metrics -----------------------------------------------------------------------------------------


def test_metrics_append_writes_the_header_once_and_round_trips_exactly(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.read_metrics() == []
    rows = [_row(1), _row(2, extra="ignored"), _row(3)]
    for row in rows:
        folder.append_metrics(row)
    lines = (tmp_path / METRICS).read_text().splitlines()
    assert lines[0] == ",".join(METRIC_COLUMNS) and len(lines) == 4
    back = folder.read_metrics()
    expected = [{k: r[k] for k in METRIC_COLUMNS} for r in rows]
    assert back == expected  # floats are written with repr: bit-exact
    assert all(type(r["epoch"]) is int for r in back)


def test_metrics_nan_and_missing_values_come_back_as_nan(tmp_path):
    folder = RunFolder(tmp_path)
    folder.append_metrics(_row(1, val_loss=math.nan, val_acc=None))
    row = folder.read_metrics()[0]
    assert math.isnan(row["val_loss"]) and math.isnan(row["val_acc"])
    assert row["train_loss"] == 2.0


def test_truncate_metrics_keeps_the_first_epochs_and_appending_continues(tmp_path):
    folder = RunFolder(tmp_path)
    for epoch in range(1, 6):
        folder.append_metrics(_row(epoch, val_loss=math.nan if epoch == 2 else 2.1 / epoch))
    folder.truncate_metrics(2)
    back = folder.read_metrics()
    assert [r["epoch"] for r in back] == [1, 2]
    assert math.isnan(back[1]["val_loss"]) and back[0]["lr"] == 1e-3
    folder.append_metrics(_row(3, lr=0.5))
    assert [r["epoch"] for r in folder.read_metrics()] == [1, 2, 3]
    assert folder.read_metrics()[2]["lr"] == 0.5
    assert (tmp_path / METRICS).read_text().count("epoch,") == 1


# ---- predictions ---------------------------------------------------------------------------------------


def test_predictions_round_trip_with_float16_logits_and_a_string_sha(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 1, 8, 8), dtype=np.uint8)
    logits = rng.normal(size=(20, 10)).astype(np.float32) * 5
    preds = {"val": Predictions(np.arange(20) * 3, rng.integers(0, 10, 20), logits, images_sha256(images)),
             "test": Predictions(np.arange(5), np.arange(5), logits[:5], images_sha256(images[:5]))}
    folder = RunFolder(tmp_path)
    folder.write_predictions(preds)
    with np.load(tmp_path / PREDICTIONS, allow_pickle=False) as raw:  # no pickled objects inside
        assert sorted(raw.files) == sorted(f"{s}_{k}" for s in ("val", "test")
                                           for k in ("indices", "labels", "logits", "sha256"))
        assert raw["val_logits"].dtype == np.float16
        assert raw["val_indices"].dtype == np.int64 and raw["val_labels"].dtype == np.int64
    back = folder.read_predictions()
    assert set(back) == {"val", "test"}
    for split in back:
        assert isinstance(back[split].sha256, str) and back[split].sha256 == preds[split].sha256
        np.testing.assert_array_equal(back[split].indices, preds[split].indices)
        np.testing.assert_array_equal(back[split].labels, preds[split].labels)
        np.testing.assert_array_equal(back[split].logits, preds[split].logits.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(back[split].predicted, preds[split].logits.argmax(1))


def test_images_sha256_depends_on_bytes_order_and_shape():
    images = np.arange(128, dtype=np.uint8).reshape(2, 1, 8, 8)
    assert images_sha256(images) == images_sha256(images.copy())
    assert len(images_sha256(images)) == 64
    assert images_sha256(images) != images_sha256(images[::-1])
    assert images_sha256(images) != images_sha256(images.reshape(2, 1, 4, 16))
    assert images_sha256(images[:, :, ::-1]) == images_sha256(np.ascontiguousarray(images[:, :, ::-1]))


# ---- weights ---------------------------------------------------------------------------------------------


def test_weights_round_trip_with_metadata(tmp_path):
    from safetensors import safe_open

    folder = RunFolder(tmp_path)
    state = {"w": torch.randn(3, 4).t(), "b": torch.arange(5)}  # a non-contiguous tensor too
    folder.write_weights(state, CHECKPOINT, metadata={"state": '{"epoch": 2}'})
    back = folder.read_weights(CHECKPOINT)
    assert torch.equal(back["w"], state["w"]) and torch.equal(back["b"], state["b"])
    with safe_open(tmp_path / CHECKPOINT, framework="pt") as source:
        assert json.loads(source.metadata()["state"]) == {"epoch": 2}


# ---- corrupt files: a RunError (a CnnlabError) naming the file --------------------------------------------


@pytest.mark.parametrize("text", ['{"status": "finis', "", "\xff\xfe garbage"])
def test_corrupt_json_is_a_run_error_with_the_path(tmp_path, text):
    (tmp_path / SUMMARY).write_bytes(text.encode("latin-1"))
    folder = RunFolder(tmp_path)
    with pytest.raises(RunError, match="not valid JSON") as info:
        folder.read_summary()
    assert isinstance(info.value, CnnlabError)
    assert str(tmp_path / SUMMARY) in str(info.value)
    with pytest.raises(RunError):
        folder.status  # noqa: B018 - the status reads the summary


def test_json_that_is_not_an_object_is_a_run_error(tmp_path):
    (tmp_path / SUMMARY).write_text("[1, 2]")
    with pytest.raises(RunError, match="JSON object") as info:
        RunFolder(tmp_path).status  # noqa: B018
    assert str(tmp_path / SUMMARY) in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_safetensors_is_a_run_error_with_the_path(tmp_path, damage):
    folder = RunFolder(tmp_path)
    folder.write_weights({"w": torch.randn(50, 50)})
    path = tmp_path / WEIGHTS
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"x" * 100, "empty": b""}[damage])
    with pytest.raises(RunError, match="not a readable safetensors file") as info:
        folder.read_weights()
    assert isinstance(info.value, CnnlabError) and str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_predictions_are_a_cnnlab_error_with_the_path(tmp_path, damage):
    folder = RunFolder(tmp_path)
    folder.write_predictions({"test": Predictions(np.arange(300), np.zeros(300), np.ones((300, 10)), "x" * 64)})
    path = tmp_path / PREDICTIONS
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"x" * 100, "empty": b""}[damage])
    with pytest.raises(CnnlabError, match="not a readable predictions file") as info:
        folder.read_predictions()
    assert str(path) in str(info.value)


def test_corrupt_config_yaml_is_a_run_error(tmp_path):
    (tmp_path / CONFIG).write_text("train: [unclosed\n")
    with pytest.raises(RunError, match="not valid YAML") as info:
        RunFolder(tmp_path).read_config()
    assert str(tmp_path / CONFIG) in str(info.value)
    (tmp_path / CONFIG).write_text("- a list\n")
    with pytest.raises(RunError, match="mapping"):
        RunFolder(tmp_path).read_config()


# ---- how files are written -------------------------------------------------------------------------------


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        folder = RunFolder(tmp_path / "run")
        folder.write_config({"data": {"name": "digits"}})
        folder.write_env({"threads": 1})
        folder.append_metrics(_row(1))
        folder.write_model_spec({"name": "lenet5"})
        folder.write_weights({"w": torch.zeros(2)})
        folder.write_predictions({"test": Predictions(np.arange(2), np.arange(2), np.ones((2, 3)), "s")})
        folder.write_summary({"status": "finished"})
        folder.truncate_metrics(1)  # rewritten atomically
    finally:
        os.umask(old)
    files = sorted(folder.path.iterdir())
    assert len(files) == 7
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "deep" / "er" / "file.txt"  # parents are made
    atomic_write(path, "first")
    atomic_write(path, b"second")
    assert path.read_text() == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]


def test_atomic_write_leaves_the_old_file_and_no_temp_file_on_failure(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, "old")
    with pytest.raises(TypeError):
        atomic_write(path, 12345)  # fails while writing
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    target = tmp_path / "a-folder"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        atomic_write(target, "x")  # fails at the rename, after the data is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "summary.json"]


def test_logits_beyond_float16_are_clipped_not_stored_as_inf(tmp_path):
    folder = RunFolder(tmp_path / "run")
    logits = np.array([[1e6, -1e6, 3.0], [np.nan, 0.0, 1.0]], dtype=np.float32)
    folder.write_predictions({"test": Predictions(np.arange(2), np.array([0, 2]), logits, "x")})
    stored = folder.read_predictions()["test"].logits
    assert stored[0, 0] == np.finfo(np.float16).max and stored[0, 1] == -np.finfo(np.float16).max
    assert stored[0, 2] == 3.0 and np.isnan(stored[1, 0])  # NaN stays NaN: that is a broken model, said plainly
    assert stored[0].argmax() == 0
