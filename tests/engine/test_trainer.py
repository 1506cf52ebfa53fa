"""The Trainer on real data (scikit-learn's 8x8 digits: 1,293 train / 144 val images after the split):
reproducibility, learning, the learning-rate curve, divergence, resume, metrics, layouts, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from run_helpers import same_weights, untimed

from cnnlab.config import TrainConfig
from cnnlab.engine.augment import Augmentation
from cnnlab.engine.callbacks import Callback, ReduceLROnPlateau
from cnnlab.engine.trainer import Trainer, TrainingDiverged, summarize
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.models import create_model

TINY_RESCNN = {"stem": 8, "widths": [8, 16]}


def make_trainer(model="lenet5", options=None, *, init_seed=0, callbacks=(), augmentation=None, loss=None,
                 **train) -> Trainer:
    torch.manual_seed(init_seed)
    train = {"epochs": 2, "threads": 1, "batch_size": 128, **train}
    built = create_model(model, 10, 1, (8, 8), channels_last=train.get("channels_last", True), **(options or {}))
    return Trainer(built.module, built.transform, TrainConfig(**train), callbacks=callbacks,
                   augmentation=augmentation, loss=loss)


# ---- reproducibility ----------------------------------------------------------------------------------


def test_same_config_seed_and_threads_give_bit_identical_results(digits):
    train, val = digits
    options = {**TINY_RESCNN, "dropout": 0.2}
    aug = Augmentation(rotation=10, shift=0.1, erasing=0.3)
    runs = [make_trainer("rescnn", options, augmentation=aug, seed=3) for _ in range(2)]
    histories = [untimed(t.fit(train, val)) for t in runs]
    assert histories[0] == histories[1]
    assert same_weights(runs[0].weights(), runs[1].weights())
    other = make_trainer("rescnn", options, augmentation=aug, seed=4)  # same initial weights, another seed
    assert untimed(other.fit(train, val)) != histories[0]
    assert not same_weights(other.weights(), runs[0].weights())


def test_the_batch_order_follows_the_seed_not_the_global_rng(digits):
    train, val = digits
    first = make_trainer(seed=1)
    torch.manual_seed(123)  # whatever happened before fit() must not matter
    a = untimed(first.fit(train, val))
    second = make_trainer(seed=1)
    torch.rand(1000)
    assert untimed(second.fit(train, val)) == a


# ---- learning ----------------------------------------------------------------------------------------------


def test_lenet5_learns_digits(digits):
    train, val = digits
    trainer = make_trainer(epochs=8, lr=3e-3, batch_size=64)
    history = trainer.fit(train, val)
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert max(row["val_acc"] for row in history) > 0.85  # ten classes: chance is 0.1
    result = trainer.evaluate(*val)
    assert result.accuracy == history[-1]["val_acc"] and result.loss == pytest.approx(history[-1]["val_loss"])
    assert result.logits.shape == (len(val[1]), 10) and result.logits.dtype == np.float32


# ---- learning-rate curve -----------------------------------------------------------------------------------


class StepLRs(Callback):
    def __init__(self):
        self.lrs = []

    def on_batch_end(self, batch, logs):
        self.lrs.append(self.trainer.current_lr())


def _step_lrs(digits, **train) -> tuple[list[float], int]:
    train_data, _ = digits
    recorder = StepLRs()
    trainer = make_trainer(callbacks=[recorder], **train)
    trainer.sync_every = 0.0  # on_batch_end after every step
    history = trainer.fit(train_data)
    steps = trainer.steps_per_epoch
    assert len(recorder.lrs) == steps * train["epochs"]
    assert [row["lr"] for row in history] == recorder.lrs[steps - 1::steps]  # the epoch's lr is its last step's
    return recorder.lrs, steps


def test_cosine_schedule_per_step(digits):
    lrs, steps = _step_lrs(digits, epochs=3, lr=0.01, schedule="cosine")
    total = 3 * steps
    assert lrs == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * s / total)) for s in range(total)], rel=1e-12)
    assert lrs[0] == 0.01 and lrs[-1] < 0.01 * 0.01


def test_step_schedule_per_epoch(digits):
    lrs, steps = _step_lrs(digits, epochs=3, lr=0.01, schedule="step", step_size=1, step_gamma=0.5)
    assert lrs == pytest.approx([0.01] * steps + [0.005] * steps + [0.0025] * steps, rel=1e-12)


def test_warm_up_then_constant(digits):
    lrs, steps = _step_lrs(digits, epochs=2, lr=0.01, warmup_epochs=1)
    assert lrs == pytest.approx([0.01 * (s + 1) / steps for s in range(steps)] + [0.01] * steps, rel=1e-12)


# ---- divergence ---------------------------------------------------------------------------------------------


def test_nan_loss_raises_training_diverged_with_where_and_the_fix(digits):
    train, val = digits
    trainer = make_trainer("lenet5", {"activation": "relu"}, optimizer="sgd", lr=1e6, epochs=3)
    where = r"the training loss became nan at epoch 1, step \d+ \(lr 1e\+06\)"
    with pytest.raises(TrainingDiverged, match=where) as info:
        trainer.fit(train, val)
    assert isinstance(info.value, CnnlabError)
    assert "lower train.lr" in str(info.value) and "train.grad_clip" in str(info.value)


class Infinite(torch.nn.Module):
    def forward(self, logits, target):
        return torch.nn.functional.cross_entropy(logits, target) * math.inf


def test_infinite_loss_raises_training_diverged(digits):
    train, _ = digits
    trainer = make_trainer(loss=Infinite())
    trainer.sync_every = 0.0  # checked after every step: the first one is already infinite
    with pytest.raises(TrainingDiverged, match=r"became inf at epoch 1, step 1 "):
        trainer.fit(train)


# ---- resume -----------------------------------------------------------------------------------------------


def _through_files(tensors: dict, meta: dict, folder) -> tuple[dict, dict]:
    """What a checkpoint file gives back (as run.py writes and reads it): safetensors plus JSON metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = folder / "checkpoint.safetensors"
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata={"state": json.dumps(meta)})
    with safe_open(path, framework="pt", device="cpu") as source:
        return {key: source.get_tensor(key) for key in source.keys()}, json.loads(source.metadata()["state"])


def _resumable(digits_epochs: int, init_seed: int = 0) -> Trainer:
    options = {**TINY_RESCNN, "dropout": 0.3}
    aug = Augmentation(rotation=15, shift=0.1, scale=0.1, erasing=0.5)
    # train accuracy rises, so with mode=min the plateau callback reduces the lr every 2nd epoch: its
    # counters cross the checkpoint
    plateau = ReduceLROnPlateau("train_acc", mode="min", factor=0.5, patience=2)
    return make_trainer("rescnn", options, init_seed=init_seed, augmentation=aug, callbacks=[plateau], epochs=4,
                        schedule="cosine", lr=3e-3, optimizer="adamw", weight_decay=1e-2, seed=7)


def test_resume_from_a_state_dict_equals_an_uninterrupted_run(digits, tmp_path):
    train, val = digits
    whole = _resumable(4)
    expected = untimed(whole.fit(train, val))
    assert whole.lr_scale == 0.5  # the plateau reduced the lr after epoch 3

    first = _resumable(4)
    first.epochs = 2  # interrupted after epoch 2 of 4
    first.fit(train, val)
    tensors, meta = _through_files(*first.state_dict(), tmp_path)
    assert meta["epoch"] == 2 and meta["callbacks"]["ReduceLROnPlateau"]["wait"] == 1

    second = _resumable(4, init_seed=99)  # other initial weights: the checkpoint must replace them
    second.load_state_dict(tensors, meta)
    history = second.fit(train, val)
    assert untimed(history) == expected  # the History came back with the checkpoint: all 4 epochs
    assert same_weights(second.weights(), whole.weights())
    assert second.lr_scale == whole.lr_scale != 1.0


def test_resume_without_the_callback_state_differs(digits, tmp_path):
    """The control for the test above: dropping the plateau's counters changes the result."""
    train, val = digits
    whole = _resumable(4)
    expected = untimed(whole.fit(train, val))
    first = _resumable(4)
    first.epochs = 2
    first.fit(train, val)
    tensors, meta = _through_files(*first.state_dict(), tmp_path)
    meta["callbacks"].pop("ReduceLROnPlateau")
    second = _resumable(4)
    second.load_state_dict(tensors, meta)
    assert untimed(second.fit(train, val)) != expected


# ---- metrics ------------------------------------------------------------------------------------------------


def test_summarize_matches_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, log_loss, top_k_accuracy_score

    rng = np.random.default_rng(0)
    labels = np.concatenate([np.arange(12), rng.integers(0, 12, 488)])
    logits = rng.normal(size=(500, 12)).astype(np.float32)
    logits[np.arange(500), labels] += rng.uniform(0, 3, 500).astype(np.float32)  # better than chance
    result = summarize(torch.from_numpy(logits), torch.from_numpy(labels))
    predicted = logits.argmax(1)
    assert 0.3 < result.accuracy < 0.95
    assert result.accuracy == pytest.approx(accuracy_score(labels, predicted), abs=1e-7)
    assert result.top5 == pytest.approx(top_k_accuracy_score(labels, logits, k=5, labels=np.arange(12)), abs=1e-7)
    assert result.macro_f1 == pytest.approx(f1_score(labels, predicted, average="macro"), abs=1e-12)
    probabilities = torch.softmax(torch.from_numpy(logits).double(), 1).numpy()
    assert result.loss == pytest.approx(log_loss(labels, probabilities, labels=np.arange(12)), rel=1e-5)
    np.testing.assert_array_equal(result.labels, labels)


@pytest.mark.parametrize("classes", [2, 5])
def test_top5_is_none_for_five_classes_or_fewer(classes):
    logits = torch.randn(30, classes)
    assert summarize(logits, torch.arange(30) % classes).top5 is None
    assert summarize(torch.randn(30, 6), torch.arange(30) % 6).top5 is not None


def test_channels_last_on_and_off_give_the_same_results(digits):
    train, val = digits
    results = []
    for channels_last in (True, False):
        # fp32: bf16 autocast (on by default on CPUs with native bf16) rounds differently per layout
        trainer = make_trainer("rescnn", TINY_RESCNN, channels_last=channels_last, amp="off")
        history = trainer.fit(train, val)
        conv = next(m for m in trainer.module.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
        memory = conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert memory == channels_last and trainer.transform.channels_last == channels_last
        results.append((history, trainer.evaluate(*val)))
    (h1, r1), (h2, r2) = results
    assert abs(r1.accuracy - r2.accuracy) < 1e-4
    assert r1.loss == pytest.approx(r2.loss, abs=1e-4)
    np.testing.assert_allclose(r1.logits, r2.logits, atol=1e-3)
    for a, b in zip(h1, h2):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)


# ---- bad input ----------------------------------------------------------------------------------------------


def test_bad_inputs_are_config_errors(digits):
    (images, labels), _ = digits
    trainer = make_trainer()
    with pytest.raises(ConfigError, match="uint8 N x C x H x W, got torch.float32"):
        trainer.fit((images.astype(np.float32), labels))
    with pytest.raises(ConfigError, match=r"uint8 N x C x H x W, got torch.uint8 \(1293, 8, 8\)"):
        trainer.fit((images[:, 0], labels))
    with pytest.raises(ConfigError, match="1293 images but labels of shape \\(1292,\\)"):
        trainer.fit((images, labels[:-1]))
    with pytest.raises(ConfigError, match="labels of shape"):
        trainer.evaluate(images, labels[:, None])
    with pytest.raises(ConfigError, match="uint8"):
        trainer.fit((images, labels), (images.astype(np.float64), labels))
    assert trainer.epoch == 0


def test_read_only_memory_mapped_arrays_are_accepted(digits, tmp_path):
    (images, labels), _ = digits
    np.save(tmp_path / "x.npy", images[:256])
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    trainer = make_trainer(epochs=1)
    history = trainer.fit((mapped, labels[:256]))
    assert math.isfinite(history[0]["train_loss"])


# ---- torch.compile (the suite's one compile check: one step of LeNet-5) ------------------------------------


def test_compiled_step_trains_like_the_eager_one(digits):
    (images, labels), _ = digits
    batches = (images[:300], labels[:300])  # two full batches and a short one: two graphs, a changing lr
    compiled = make_trainer(epochs=1, compile=True, schedule="cosine")
    eager = make_trainer(epochs=1, compile=False, schedule="cosine")
    h_compiled, h_eager = compiled.fit(batches), eager.fit(batches)
    assert compiled.compiled and not eager.compiled
    assert h_compiled[0]["train_loss"] == pytest.approx(h_eager[0]["train_loss"], abs=1e-4)
    assert h_compiled[0]["lr"] == pytest.approx(h_eager[0]["lr"])
    for name, value in compiled.weights().items():
        torch.testing.assert_close(value, eager.weights()[name], atol=1e-4, rtol=1e-3)
    tensors, meta = compiled.state_dict()  # the tensor learning rate is saved as a number
    json.dumps(meta)
    resumed = make_trainer(epochs=1, compile=True, schedule="cosine")
    resumed.load_state_dict(tensors, meta)
    assert torch.is_tensor(resumed.optimizer.param_groups[0]["lr"])
    assert resumed.current_lr() == pytest.approx(compiled.current_lr())


def test_a_compiler_that_cannot_build_falls_back_to_eager_under_auto(digits, monkeypatch):
    import torch._inductor.config as inductor_config

    from cnnlab.engine import device

    (images, labels), _ = digits
    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++",))  # a machine without a C++ compiler
    monkeypatch.setattr(device, "COMPILE_MIN_IMAGES", 100)  # so 'auto' compiles this small run
    trainer = make_trainer(epochs=1, compile="auto")
    with pytest.warns(UserWarning, match="torch.compile failed"):
        history = trainer.fit((images[:128], labels[:128]))
    assert not trainer.compiled and math.isfinite(history[0]["train_loss"])
    eager = make_trainer(epochs=1, compile=False)
    assert untimed(eager.fit((images[:128], labels[:128]))) == untimed(history)
    torch._dynamo.reset()
    strict = make_trainer(epochs=1, compile=True)
    with pytest.raises(ConfigError, match="torch.compile failed.*train.compile=false"):
        strict.fit((images[:128], labels[:128]))


def test_auto_compile_only_where_it_was_measured_to_pay():
    from cnnlab.engine.device import resolve_compile
    from cnnlab.models.profile import profile_model

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    lenet, rescnn = (profile_model(name, 10, 1, 28).macs for name in ("lenet5", "rescnn"))
    assert resolve_compile("auto", cpu, lenet, 60_000 * 20)
    assert not resolve_compile("auto", cpu, lenet, 12_000 * 3)  # compiling would cost more than it saves
    assert not resolve_compile("auto", cpu, rescnn, 60_000 * 20)  # convolution-bound: measured slower
    assert not resolve_compile("auto", cuda, lenet, 60_000 * 20)
    assert resolve_compile(True, cpu, rescnn, 1) and not resolve_compile(False, cpu, lenet, 10**9)
    with pytest.raises(ConfigError, match="auto, true or false"):
        resolve_compile("yes", cpu, lenet, 1)


def test_auto_precision_follows_the_hardware():
    from cnnlab.engine.device import cpu_has_native_bf16, resolve_amp

    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "off")
    assert resolve_amp("off", cpu) == "off" and resolve_amp("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match="auto, off or bf16"):
        resolve_amp("fp8", cpu)


def test_bf16_autocast_trains_and_stays_reproducible(digits):
    train, val = digits
    runs = [make_trainer(amp="bf16").fit(train, val) for _ in range(2)]
    assert [(r["train_loss"], r["val_acc"]) for r in runs[0]] == [(r["train_loss"], r["val_acc"]) for r in runs[1]]
    assert runs[0][-1]["val_acc"] > 0.3  # ten classes: it learns in bf16 too


def test_the_cpu_allocator_keeps_freed_buffers_on_linux():
    import platform

    from cnnlab.engine.device import keep_freed_memory

    assert keep_freed_memory() is (platform.system() == "Linux")
