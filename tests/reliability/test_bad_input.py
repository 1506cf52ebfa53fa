"""Bad input to every command: exit code 2, one line on stderr that names the problem (the file, flag
or key) and a fix, no trace, and nothing half-written (the case's folder and the data home are left
exactly as they were)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A message says how to fix the problem: one of these, once the case's own paths are taken out.
FIX = ("give ", "use ", "choose ", "check ", "restore ", "retrain", "remove ", "set ", "lower ", "rerun ", "write ",
       "finish ", "evaluate ", "put ", "download ", "add ", "delete ", "drop ", "start one", "leave it out",
       "did you mean", "valid:", "valid options", "known:", "one of", "must be", "must lie", "should be", "takes ",
       "end the name", "replace", "downscale", "is it the right file", "e.g.", "--help", "`cnnlab ")


# ---- shared fixtures (built once per module) -----------------------------------------------------------------


def _images(folder: Path, classes, size: int, per_class: int = 3, splits=("train", "test")) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for name in classes:
            target = folder / split / name
            target.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(target / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny finished LeNet-5 run on digits, a two-cell study, and small image-folder datasets."""
    from cnnlab.experiments.run import train_run
    from cnnlab.experiments.study import run_study

    root = tmp_path_factory.mktemp("bad-input")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_DATA", str(tmp_path_factory.mktemp("bad-input-home")))
        patch.setenv("CNNLAB_OFFLINE", "1")
        base = {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "threads": 1}}
        run = train_run(base, root / "run", progress=False).path
        study = run_study({"name": "tiny", "base": base, "ablate": {"train.optimizer": ["sgd"]}, "seeds": 1},
                          root / "study", progress=False).folder.path
    return {
        "run": run,
        "study": study,
        # three classes nothing else has; two letters no digit model knows; digits' classes at 16x16
        "other_classes": _images(root / "other-classes", ["cat", "dog", "owl"], 8),
        "letters": _images(root / "letters", ["a", "b"], 8),
        "big_digits": _images(root / "big-digits", [str(i) for i in range(10)], 16, per_class=10),
    }


@dataclass
class Ctx:
    """What a case builds on: its own folder (the working directory), and copies of the shared runs."""

    tmp: Path
    built: dict

    def run(self, name: str = "run") -> Path:
        target = self.tmp / name
        if not target.exists():
            shutil.copytree(self.built["run"], target)
        return target

    def study(self) -> Path:
        target = self.tmp / "study"
        if not target.exists():
            shutil.copytree(self.built["study"], target)
        return target

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def png(self, name: str = "digit.png", size: int = 8) -> Path:
        path = self.tmp / name
        Image.fromarray(np.zeros((size, size), np.uint8)).save(path)
        return path


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _idx_folder(ctx: Ctx, images: bytes | None = None, labels: bytes | None = None, gz: bool = True) -> Path:
    folder = ctx.tmp / "idx"
    folder.mkdir()
    good_images = _idx(np.zeros((4, 8, 8), np.uint8))
    good_labels = _idx(np.array([0, 1, 0, 1], np.uint8))
    for prefix in ("train", "t10k"):
        for kind, data in (("images-idx3-ubyte", images or good_images), ("labels-idx1-ubyte", labels or good_labels)):
            name = f"{prefix}-{kind}" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
    return folder


def _edit_json(path: Path, change) -> None:
    tree = json.loads(path.read_text())
    change(tree)
    path.write_text(json.dumps(tree))


def _reshaped_weights(run: Path) -> None:
    """model.safetensors replaced by tensors of other shapes (a head for 9 classes)."""
    from safetensors.numpy import load_file, save_file

    state = load_file(str(run / "model.safetensors"))
    head = [k for k in state if k.endswith("weight")][-1]
    state[head] = state[head][:-1]
    state[head.replace("weight", "bias")] = state[head.replace("weight", "bias")][:-1]
    save_file(state, str(run / "model.safetensors"))


def _other_images(run: Path) -> None:
    """predictions.npz as if evaluated on other test images (another fingerprint)."""
    with np.load(run / "predictions.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["test_sha256"] = np.array("0" * 64)
    np.savez(run / "predictions.npz", **arrays)


def _seed_group(ctx: Ctx) -> Path:
    group = ctx.tmp / "group"
    for seed in (0, 1):
        target = group / f"seed={seed}"
        shutil.copytree(ctx.built["run"], target)
        _edit_json(target / "summary.json", lambda s, seed=seed: s.update(seed=seed))
    return group


def _study_file(ctx: Ctx, text: str) -> Path:
    return ctx.file("study.yaml", text)


BASE = "base: {data: digits, model: lenet5, train: {epochs: 1, threads: 1}}\n"


# ---- the cases: id -> ctx -> (arguments, fragments the message must hold) -----------------------------------

CASES = {
    # data list / info
    "data-list-unknown-flag": lambda c: (["data", "list", "--colour"], ["--colour"]),
    "data-info-unknown-name": lambda c: (["data", "info", "digitz"], ["digitz", "did you mean"]),
    "data-info-idx-missing-folder": lambda c: (["data", "info", f"idx:{c.tmp / 'nowhere'}"], ["nowhere"]),
    "data-info-idx-corrupt-gzip": lambda c: _corrupt_gzip(c),
    "data-info-idx-truncated": lambda c: (
        ["data", "info", f"idx:{_idx_folder(c, images=_idx(np.zeros((4, 8, 8), np.uint8))[:-10])}"],
        ["images-idx3-ubyte"]),
    "data-info-idx-bad-magic": lambda c: (
        ["data", "info", f"idx:{_idx_folder(c, labels=b'PK' + _idx(np.zeros(4, np.uint8))[2:])}"],
        ["labels-idx1-ubyte"]),
    "data-info-idx-count-mismatch": lambda c: (
        ["data", "info", f"idx:{_idx_folder(c, labels=_idx(np.zeros(3, np.uint8)), gz=False)}"], ["labels"]),
    "data-info-csv-bad-row": lambda c: (
        ["data", "info", "csv:" + str(c.file("train.csv", "1,0,0,0,0\n2,0,0\n3,0,0,0,0\n"))], ["train.csv"]),
    "data-info-csv-pixel-out-of-range": lambda c: (
        ["data", "info", "csv:" + str(c.file("train.csv", "1,0,0,0,300\n0,0,0,0,0\n"))], ["train.csv", "255"]),
    "data-info-csv-missing-file": lambda c: (["data", "info", f"csv:{c.tmp / 'none.csv'}"], ["none.csv"]),
    "data-info-csv-unknown-option": lambda c: (
        ["data", "info", "csv:" + str(c.file("train.csv", "1,0,0,0,0\n")) + ";colour=red"], ["colour", "valid"]),
    "data-info-folder-without-classes": lambda c: (
        ["data", "info", f"folder:{c.file('empty/.keep', '').parent}"], ["empty"]),
    "data-info-folder-not-an-image": lambda c: (
        ["data", "info", f"folder:{c.file('pics/a/broken.png', 'not a png').parents[1]}"], ["broken.png"]),
    # data show / hist
    "data-show-unknown-name": lambda c: (["data", "show", "digitz", "-o", c.tmp / "g.png"], ["digitz"]),
    "data-show-unsupported-format": lambda c: (["data", "show", "digits", "-o", c.tmp / "out.xyz"],
                                               ["out.xyz", ".png"]),
    "data-show-unwritable": lambda c: (["data", "show", "digits", "-o", "/proc/cnnlab-grid.png"],
                                       ["/proc/cnnlab-grid.png"]),
    "data-show-under-a-file": lambda c: (["data", "show", "digits", "-o", c.file("plain", "x") / "g.png"],
                                         ["plain", "not a folder"]),
    "data-show-bad-split": lambda c: (["data", "show", "digits", "--split", "validation", "-o", c.tmp / "g.png"],
                                      ["--split", "validation"]),
    "data-show-per-class-zero": lambda c: (["data", "show", "digits", "-k", 0, "-o", c.tmp / "g.png"],
                                           ["--per-class"]),
    "data-hist-unsupported-format": lambda c: (["data", "hist", "digits", "-o", c.tmp / "h.docx"], ["h.docx"]),
    "data-hist-under-a-file": lambda c: (["data", "hist", "digits", "-o", c.file("plain", "x") / "h.png"],
                                         ["plain"]),
    "data-hist-unwritable": lambda c: (["data", "hist", "digits", "-o", "/proc/cnnlab-hist.png"],
                                       ["/proc/cnnlab-hist.png"]),
    "data-hist-unknown-name": lambda c: (["data", "hist", "fashion-mnst", "-o", c.tmp / "h.png"], ["fashion-mnst"]),
    # data add / download
    "data-add-unknown-family": lambda c: (["data", "add", "nmist", "--from", c.tmp], ["nmist"]),
    "data-add-missing-source": lambda c: (["data", "add", "mnist", "--from", c.tmp / "Downloads"], ["Downloads"]),
    "data-add-folder-without-files": lambda c: (["data", "add", "mnist", "--from", c.file("dl/readme", "").parent],
                                                ["dl"]),
    "data-add-corrupt-gzip": lambda c: (
        ["data", "add", "mnist", "--from", c.file("dl/train-images-idx3-ubyte.gz", b"\x1f\x8bnot gzip").parent],
        ["train-images-idx3-ubyte.gz"]),
    "data-add-cifar-not-a-tar": lambda c: (
        ["data", "add", "cifar10", "--from", c.file("cifar-10-python.tar.gz", b"not a tar")],
        ["cifar-10-python.tar.gz"]),
    "data-add-emnist-bad-zip": lambda c: (["data", "add", "emnist", "--from", c.file("gzip.zip", b"PK\x03\x04broken")],
                                          ["gzip.zip"]),
    "data-download-unknown-name": lambda c: (["data", "download", "kmnsit"], ["kmnsit", "did you mean"]),
    "data-download-offline": lambda c: (["data", "download", "kmnist"], ["kmnist", "CNNLAB_OFFLINE"]),
    # models
    "models-list-unknown-data": lambda c: (["models", "list", "--data", "digitz"], ["digitz"]),
    "models-summary-unknown-model": lambda c: (["models", "summary", "resnet5"], ["resnet5", "did you mean"]),
    "models-summary-unknown-data": lambda c: (["models", "summary", "lenet5", "--data", "nope"], ["nope"]),
    "models-summary-bad-depth": lambda c: (["models", "summary", "lenet5", "--depth", "deep"], ["--depth"]),
    # train
    "train-unknown-data": lambda c: (["train", "--data", "digitz", "--out", c.tmp / "r"], ["digitz"]),
    "train-unknown-model": lambda c: (["train", "--data", "digits", "--model", "lenet6", "--out", c.tmp / "r"],
                                      ["lenet6"]),
    "train-negative-lr": lambda c: (["train", "--data", "digits", "train.lr=-1", "--out", c.tmp / "r"], ["train.lr"]),
    "train-misspelt-key": lambda c: (["train", "--data", "digits", "train.optimizr=adam", "--out", c.tmp / "r"],
                                     ["train.optimizr", "train.optimizer"]),
    "train-bad-optimizer": lambda c: (["train", "--data", "digits", "--optimizer", "adamm", "--out", c.tmp / "r"],
                                      ["train.optimizer", "adamm"]),
    "train-config-is-a-list": lambda c: (["train", "-c", c.file("run.yaml", "- data\n- model\n"), "--out", c.tmp / "r"],
                                         ["run.yaml"]),
    "train-config-bad-yaml": lambda c: (["train", "-c", c.file("run.yaml", "data: [digits\n"), "--out", c.tmp / "r"],
                                        ["run.yaml"]),
    "train-config-missing": lambda c: (["train", "-c", c.tmp / "none.yaml", "--out", c.tmp / "r"], ["none.yaml"]),
    "train-subset-too-large": lambda c: (["train", "--data", "digits", "--subset", 100000, "--out", c.tmp / "r"],
                                         ["--subset", "data.subset", "1,292"]),
    "train-val-too-large": lambda c: (["train", "--data", "digits", "--val", 5000, "--out", c.tmp / "r"],
                                      ["--val", "1,436"]),
    "train-test-too-large": lambda c: (["train", "--data", "digits", "data.carve_from=train", "data.test=5000",
                                        "--out", c.tmp / "r"], ["data.test"]),
    "train-carve-from-unknown-split": lambda c: (["train", "--data", "digits", "data.carve_from=validation",
                                                  "--out", c.tmp / "r"], ["data.carve_from", "validation"]),
    "train-lenet-widths": lambda c: (["train", "--data", "digits", "--model", "lenet5", "model.widths=[8]",
                                      "--out", c.tmp / "r"], ["widths"]),
    "train-override-without-equals": lambda c: (["train", "--data", "digits", "lr", "--out", c.tmp / "r"],
                                                ["key=value"]),
    "train-flip-on-characters": lambda c: (["train", "--data", "digits", "augment.flip=true", "--out", c.tmp / "r"],
                                           ["augment.flip"]),
    "train-out-holds-a-run": lambda c: (["train", "--data", "digits", "--out", c.run()], ["--resume"]),
    "train-resume-without-out": lambda c: (["train", "--resume"], ["--resume", "--out"]),
    "train-resume-not-a-run": lambda c: (["train", "--out", c.file("notrun/x.txt", "x").parent, "--resume"],
                                         ["notrun"]),
    "train-resume-other-settings": lambda c: (["train", "--out", c.run(), "--resume", "train.lr=0.5"],
                                              ["train.lr"]),
    # evaluate
    "evaluate-missing-run": lambda c: (["evaluate", c.tmp / "runs" / "nope"], ["nope"]),
    "evaluate-missing-config": lambda c: (["evaluate", _without(c.run(), "config.yaml")], ["config.yaml"]),
    "evaluate-corrupt-config": lambda c: (["evaluate", _write(c.run(), "config.yaml", "train: [1\n")], ["config.yaml"]),
    "evaluate-bad-config-value": lambda c: (
        ["evaluate", _write(c.run(), "config.yaml", (c.built["run"] / "config.yaml").read_text().replace(
            "lr: 0.001", "lr: -1"))], ["config.yaml", "train.lr"]),
    "evaluate-corrupt-model-json": lambda c: (["evaluate", _write(c.run(), "model.json", "{oops")], ["model.json"]),
    "evaluate-too-few-class-names": lambda c: (
        ["evaluate", _json(c.run(), "model.json", lambda s: s.update(classes=s["classes"][:9]))],
        ["model.json", "9", "10"]),
    "evaluate-too-many-class-names": lambda c: (
        ["evaluate", _json(c.run(), "model.json", lambda s: s.update(classes=s["classes"] + ["extra"]))],
        ["model.json", "11", "10"]),
    "evaluate-model-json-unknown-option": lambda c: (
        ["evaluate", _json(c.run(), "model.json", lambda s: s["options"].update(widths=[8]))], ["model.json"]),
    "evaluate-weights-of-another-shape": lambda c: (["evaluate", _apply(c.run(), _reshaped_weights)],
                                                    ["model.safetensors", "inconsistent"]),
    "evaluate-corrupt-weights": lambda c: (["evaluate", _write(c.run(), "model.safetensors", b"\0" * 100)],
                                           ["model.safetensors"]),
    "evaluate-missing-weights": lambda c: (["evaluate", _without(c.run(), "model.safetensors")],
                                           ["model.safetensors"]),
    "evaluate-other-classes": lambda c: (["evaluate", c.run(), "--data", f"folder:{c.built['other_classes']}"],
                                         ["classes"]),
    "evaluate-other-image-shape": lambda c: (["evaluate", c.run(), "--data", f"folder:{c.built['big_digits']}"],
                                             ["16x16", "8x8"]),
    "evaluate-negative-confused": lambda c: (["evaluate", c.run(), "--confused", -1], ["--confused"]),
    # predict
    "predict-not-an-image": lambda c: (["predict", c.run(), c.file("notes.png", "text")], ["notes.png"]),
    "predict-missing-image": lambda c: (["predict", c.run(), c.tmp / "gone.png"], ["gone.png"]),
    "predict-folder-as-image": lambda c: (["predict", c.run(), c.file("pics/x", "").parent], ["pics"]),
    "predict-truncated-png": lambda c: (["predict", c.run(), c.file("cut.png", _noise_png(c)[:400])], ["cut.png"]),
    "predict-huge-image": lambda c: (["predict", c.run(), _huge_png(c)], ["huge.png", "megapixels"]),
    "predict-top-zero": lambda c: (["predict", c.run(), c.png(), "--top", 0], ["--top"]),
    "predict-bad-invert": lambda c: (["predict", c.run(), c.png(), "--invert", "maybe"], ["--invert"]),
    "predict-too-few-class-names": lambda c: (
        ["predict", _json(c.run(), "model.json", lambda s: s.update(classes=s["classes"][:9])), c.png()],
        ["model.json", "9", "10"]),
    "predict-not-a-run": lambda c: (["predict", c.file("plain/x", "").parent, c.png()], ["plain"]),
    # study run / status / table
    "study-run-missing-file": lambda c: (["study", "run", c.tmp / "none.yaml", "-o", c.tmp / "s"], ["none.yaml"]),
    "study-run-unknown-key": lambda c: (["study", "run", _study_file(c, "name: s\n" + BASE + "ablte: {}\nseeds: 1\n"),
                                         "-o", c.tmp / "s"], ["ablte"]),
    "study-run-empty-values": lambda c: (
        ["study", "run", _study_file(c, "name: s\n" + BASE + "ablate: {train.optimizer: []}\nseeds: 1\n"),
         "-o", c.tmp / "s"], ["train.optimizer"]),
    "study-run-bad-seeds": lambda c: (["study", "run", _study_file(c, "name: s\n" + BASE + "seeds: -1\n"),
                                       "-o", c.tmp / "s"], ["seeds"]),
    "study-run-seed-list-of-words": lambda c: (["study", "run", _study_file(c, "name: s\n" + BASE + "seeds: [a, b]\n"),
                                                "-o", c.tmp / "s"], ["seeds"]),
    "study-run-file-is-a-list": lambda c: (["study", "run", _study_file(c, "- a\n- b\n"), "-o", c.tmp / "s"],
                                           ["study.yaml"]),
    "study-run-bad-base-key": lambda c: (
        ["study", "run", _study_file(c, "name: s\nbase: {data: digits, train: {lrr: 1}}\nseeds: 1\n"),
         "-o", c.tmp / "s"], ["train.lrr"]),
    "study-run-missing-import": lambda c: (
        ["study", "run", _study_file(c, "name: s\n" + BASE + "seeds: 1\nimports: [no_such_models]\n"),
         "-o", c.tmp / "s"], ["no_such_models"]),
    "study-run-out-is-a-file": lambda c: (["study", "run", _study_file(c, "name: s\n" + BASE + "seeds: 1\n"),
                                           "-o", c.file("taken", "x")], ["taken"]),
    "study-run-out-is-a-run": lambda c: (["study", "run", _study_file(c, "name: s\n" + BASE + "seeds: 1\n"),
                                          "-o", c.run()], ["run"]),
    "study-run-bad-executor": lambda c: (["study", "run", _study_file(c, "name: s\n" + BASE + "seeds: 1\n"),
                                          "-o", c.tmp / "s", "-e", "threads"], ["threads"]),
    "study-status-not-a-study": lambda c: (["study", "status", c.run()], ["study.json"]),
    "study-status-corrupt-manifest": lambda c: (["study", "status", _write(c.study(), "study.json", "{")],
                                                ["study.json"]),
    "study-table-not-a-study": lambda c: (["study", "table", c.file("folder/x", "").parent], ["study.json"]),
    "study-table-bad-format": lambda c: (["study", "table", c.study(), "--format", "html"], ["--format"]),
    "study-table-out-without-format": lambda c: (["study", "table", c.study(), "-o", c.tmp / "t.txt"], ["--out"]),
    "study-table-unwritable": lambda c: (["study", "table", c.study(), "--format", "csv", "-o", "/proc/cnnlab.csv"],
                                         ["/proc/cnnlab.csv"]),
    "study-table-bad-alpha": lambda c: (["study", "table", c.study(), "--alpha", 1.5], ["alpha"]),
    # compare
    "compare-run-and-empty-folder": lambda c: (["compare", c.run(), c.file("empty/.keep", "").parent], ["empty"]),
    "compare-run-and-missing": lambda c: (["compare", c.run(), c.tmp / "gone"], ["gone", "no such folder"]),
    "compare-one-path": lambda c: (["compare", c.run()], ["at least two"]),
    "compare-different-test-images": lambda c: (["compare", c.run(), _apply(c.run("other"), _other_images)],
                                                ["different"]),
    "compare-zero-resamples": lambda c: (["compare", c.run(), c.run("b"), "--resamples", 0], ["--resamples"]),
    "compare-alpha-above-one": lambda c: (["compare", c.run(), c.run("b"), "--alpha", 2], ["--alpha"]),
    "compare-bad-split": lambda c: (["compare", c.run(), c.run("b"), "--split", "train"], ["--split"]),
    "compare-corrupt-predictions": lambda c: (["compare", c.run(), _write(c.run("b"), "predictions.npz", b"PK\0")],
                                              ["predictions.npz"]),
    "compare-run-with-seed-group": lambda c: (["compare", c.run(), _seed_group(c)], ["not a mix", "group"]),
    "compare-unfinished-run": lambda c: (["compare", c.run(), _without(c.run("b"), "summary.json")],
                                         ["summary.json", "--resume"]),
    # crosseval
    "crosseval-no-shared-class": lambda c: (["crosseval", c.run(), "--data", f"folder:{c.built['letters']}"],
                                            ["cannot be mapped"]),
    "crosseval-unknown-data": lambda c: (["crosseval", c.run(), "--data", "digitz"], ["digitz", "--data"]),
    "crosseval-empty-data": lambda c: (["crosseval", c.run(), "--data", ","], ["--data"]),
    "crosseval-other-image-shape": lambda c: (["crosseval", c.run(), "--data", f"folder:{c.built['big_digits']}"],
                                              ["--data", "16x16"]),
    "crosseval-not-a-run": lambda c: (["crosseval", c.file("plain/x", "").parent, "--data", "digits"], ["plain"]),
    # select
    "select-unknown-criterion": lambda c: (["select", c.run(), c.run("b"), "--weights", "speed=1"],
                                           ["--weights", "speed"]),
    "select-weight-not-a-number": lambda c: (["select", c.run(), c.run("b"), "--weights", "accuracy=x"],
                                             ["--weights", "accuracy"]),
    "select-all-weights-zero": lambda c: (["select", c.run(), c.run("b"), "--weights", "accuracy=0"],
                                          ["--weights"]),
    "select-bad-normalisation": lambda c: (["select", c.run(), c.run("b"), "--normalisation", "log"],
                                           ["--normalisation"]),
    "select-one-candidate": lambda c: (["select", c.run()], ["at least two"]),
    "select-empty-folder": lambda c: (["select", c.run(), c.file("empty/.keep", "").parent], ["empty"]),
    "select-failed-run": lambda c: (["select", c.run(), _json(c.run("b"), "summary.json",
                                                              lambda s: s.update(status="failed"))], ["failed"]),
    # report
    "report-unwritable": lambda c: (["report", c.run(), "-o", "/proc/cnnlab-report"], ["/proc/cnnlab-report"]),
    "report-under-a-file": lambda c: (["report", c.run(), "-o", c.file("plain", "x") / "rep"], ["plain"]),
    "report-out-is-a-file": lambda c: (["report", c.run(), "-o", c.file("plain", "x")], ["plain", "folder"]),
    "report-out-holds-other-files": lambda c: (["report", c.run(), "-o", c.file("mine/notes.txt", "x").parent],
                                               ["mine", "not a cnnlab report"]),
    "report-corrupt-summary": lambda c: (["report", c.run(), _write(c.run("b"), "summary.json", "{"), "-o",
                                          c.tmp / "rep"], ["summary.json"]),
    "report-corrupt-summary-keeps-old-report": lambda c: (
        ["report", _write(c.run("b"), "summary.json", "{"), "-o", _old_report(c)], ["summary.json"]),
    "report-corrupt-metrics": lambda c: (["report", c.run(), _write(c.run("b"), "metrics.csv", "epoch,lr\nx,y\n"),
                                          "-o", c.tmp / "rep"], ["metrics.csv"]),
    "report-corrupt-predictions": lambda c: (["report", _write(c.run(), "predictions.npz", b"junk"), "-o",
                                              c.tmp / "rep"], ["predictions.npz"]),
    "report-not-a-run": lambda c: (["report", c.file("plain/x", "").parent, "-o", c.tmp / "rep"], ["plain"]),
    "report-unfinished-run": lambda c: (["report", _without(c.run(), "summary.json"), "-o", c.tmp / "rep"],
                                        ["summary.json", "--resume"]),
    "report-missing-out": lambda c: (["report", c.run()], ["--out"]),
}


def _corrupt_gzip(c: Ctx):
    folder = _idx_folder(c)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"x" * 2000)[:40])
    return ["data", "info", f"idx:{folder}"], ["train-images-idx3-ubyte.gz"]


def _noise_png(c: Ctx) -> bytes:
    path = c.tmp / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    return path.read_bytes()


def _huge_png(c: Ctx) -> Path:
    """A 20000 x 20000 one-bit PNG: 400 megapixels in about 50 kB."""
    path = c.tmp / "huge.png"
    Image.new("1", (20000, 20000)).save(path)
    return path


def _old_report(c: Ctx) -> Path:
    folder = c.tmp / "rep"
    (folder / "figures").mkdir(parents=True)
    (folder / "report.html").write_text("<html>the earlier report</html>")
    (folder / "report.md").write_text("# the earlier report")
    return folder


def _write(run: Path, name: str, content: str | bytes) -> Path:
    (run / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return run


def _without(run: Path, name: str) -> Path:
    (run / name).unlink()
    return run


def _json(run: Path, name: str, change) -> Path:
    _edit_json(run / name, change)
    return run


def _apply(run: Path, change) -> Path:
    change(run)
    return run


# ---- the check ---------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under root with its size, mtime and content hash (empty lock files, which
    only say who may write, are left out)."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.name.endswith(".lock") and path.is_file() and path.stat().st_size == 0:
            continue
        if path.is_dir():
            out[key] = ("dir",)
        else:
            stat = path.stat()
            out[key] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.fixture
def digits_cached(isolated_data_home):
    """The data home with digits already parsed, so a command that reads it changes nothing there."""
    from cnnlab.data import load_dataset

    load_dataset("digits")
    return isolated_data_home


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_leaves_nothing(case, built, cli, tmp_path, digits_cached, monkeypatch):
    work = tmp_path / "case"
    work.mkdir()
    monkeypatch.chdir(work)  # anything written to a relative default path lands here, and is seen
    args, fragments = CASES[case](Ctx(work, built))
    from cnnlab.data import load_dataset

    for arg in args:  # the shared image folders are valid data: caching them is not what is checked
        if isinstance(arg, str) and arg.startswith("folder:") and Path(arg[7:]).parent == built["run"].parent:
            load_dataset(arg)
    before, home_before = snapshot(work), snapshot(digits_cached)
    result = cli(*args)
    stderr, stdout = result.stderr, result.stdout
    plain = stderr.replace(str(work), "").replace(str(built["run"].parent), "").lower()
    problems = [
        "a trace was printed" if "Traceback" in stderr + stdout else None,
        f"exit code {result.exit_code}, not 2 ({result.exception!r})" if result.exit_code != 2 else None,
        "stderr is not one 'error: ' line" if not (stderr.startswith("error: ") and stderr.count("\n") == 1
                                                  and stderr.endswith("\n")) else None,
        f"stdout is not empty: {stdout[-300:]!r}" if stdout else None,
        *(f"the message does not name {f!r}" for f in map(str, fragments) if f not in stderr),
        "the message gives no fix" if not any(fix in plain for fix in FIX) else None,
        "the case's files changed" if snapshot(work) != before else None,
        "the data home changed" if snapshot(digits_cached) != home_before else None,
    ]
    problems = [p for p in problems if p]
    assert not problems, f"{'; '.join(problems)}\nstderr: {stderr[-2000:]}"


COMMANDS = ("data-list", "data-info", "data-show", "data-hist", "data-add", "data-download", "models-list",
            "models-summary", "train", "evaluate", "predict", "study-run", "study-status", "study-table", "compare",
            "crosseval", "select", "report")


def test_every_command_has_cases():
    assert len(CASES) >= 60
    for command in COMMANDS:
        assert any(case.startswith(command + "-") for case in CASES), command
