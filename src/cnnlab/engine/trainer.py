"""The fit / evaluate loop.

Why it is fast: the whole dataset sits on the training device as uint8 (a quarter of float32's
bytes); a batch is one gather by a seeded permutation; the model's input transform and the
augmentation are batched tensor ops; the model and its inputs are channels_last; the loss and
accuracy are summed on the device and read back only every half second (for progress and the
NaN check), so the CPU never waits on the step it just queued.

Why it is reproducible: every random draw of epoch e comes from generators seeded by (seed, e),
and the learning rate is a pure function of the global step, so a run resumed from the checkpoint
of epoch e continues exactly as an uninterrupted one (same thread count, same device).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..errors import CnnlabError, ConfigError
from .augment import Augmentation, augment
from .callbacks import Callback, History
from .device import resolve_amp, resolve_compile, resolve_device, set_threads, tune_backends
from .optim import lr_factor, make_optimizer


class TrainingDiverged(CnnlabError):
    """The loss became NaN or infinite."""


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    top5: float | None
    macro_f1: float
    logits: np.ndarray
    labels: np.ndarray
    seconds: float
    images_per_s: float

    def metrics(self) -> dict:
        return {"accuracy": self.accuracy, "loss": self.loss, "macro_f1": self.macro_f1, "top5": self.top5,
                "images_per_s": self.images_per_s}


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A distinct 63-bit seed per (run seed, epoch, stream): resuming at epoch e needs no saved RNG state."""
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1)


class Trainer:
    """Trains `module` on uint8 image tensors with the options of a TrainConfig.

    transform: the model's InputTransform (uint8 batch -> model input).
    loss: the training loss module (default: cross-entropy with the config's label smoothing).
    callbacks: Keras-shaped callbacks (see callbacks.py); a History is always added.
    """

    def __init__(self, module, transform, config: TrainConfig | None = None, *, loss=None,
                 augmentation: Augmentation | None = None, callbacks=(), eval_batch_size: int | None = None):
        self.config = config = config or TrainConfig()
        self.threads = set_threads(config.threads)
        self.device = resolve_device(config.device)
        self.amp = resolve_amp(config.amp, self.device)
        tune_backends(self.device)
        self.module = module.to(self.device)
        if config.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)
        self.transform = transform
        if config.channels_last != transform.channels_last:
            from dataclasses import replace

            self.transform = replace(transform, channels_last=config.channels_last)
        self.loss_fn = (loss if loss is not None else torch.nn.CrossEntropyLoss(
            label_smoothing=config.label_smoothing)).to(self.device)
        self.augmentation = augmentation or Augmentation()
        # a tensor learning rate where the step may be compiled, so schedule changes never recompile it
        # (CPU only: tensor learning rates in CUDA's fused kernels have not been tried on a GPU here)
        may_compile = config.compile is not False and self.device.type == "cpu"
        # a transfer model gives its own groups (head, backbone stages at their learning-rate multipliers)
        params = self.module.param_groups() if hasattr(self.module, "param_groups") else self.module.parameters()
        self.optimizer = make_optimizer(config.optimizer, params, config.lr, config.weight_decay, config.momentum,
                                        lr_as_tensor=may_compile)
        self.compiled = False  # decided in fit(): train.compile and, for 'auto', the model's size and the work
        self._train_step = self._eager_step
        self.history = History()
        # History first: a checkpoint written at an epoch's end (ModelCheckpoint, placed last) holds it complete
        self.callbacks: list[Callback] = [self.history, *callbacks]
        for callback in self.callbacks:
            callback.set_trainer(self)
        self.eval_batch_size = eval_batch_size or max(1024, config.batch_size)
        self.epochs = config.epochs
        self.lr_scale = 1.0
        self.stop_training = False
        self.stop_reason = None
        self.epoch = 0
        self.steps_per_epoch = 1
        self.sync_every = 0.5  # seconds between reads of the running loss
        self.generator = torch.Generator(device=self.device)

    # ---- learning rate -----------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        c = self.config
        total = self.steps_per_epoch * c.epochs
        factor = lr_factor(c.schedule, step, total, round(c.warmup_epochs * self.steps_per_epoch),
                           c.step_size * self.steps_per_epoch, c.step_gamma)
        return c.lr * factor * self.lr_scale

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            rate = lr * group.get("lr_mult", 1.0)
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(rate)
            elif group["lr"] != rate:
                group["lr"] = rate

    # ---- weights and state -------------------------------------------------------------------
    def weights(self, copy: bool = False) -> dict:
        state = self.module.state_dict()
        return {k: v.detach().clone() for k, v in state.items()} if copy else state

    def load_weights(self, state: dict) -> None:
        self.module.load_state_dict(state)

    def state_dict(self) -> tuple[dict, dict]:
        """(tensors, json_meta) of everything a resumed run needs: weights, optimizer, callbacks."""
        tensors = {f"model.{k}": v for k, v in self.module.state_dict().items()}
        optim = self.optimizer.state_dict()
        scalars = {}
        for index, state in optim["state"].items():
            for key, value in state.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{index}.{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        meta = {
            "epoch": self.epoch,
            "lr_scale": self.lr_scale,
            "stop_training": self.stop_training,  # a run stopped early stays stopped when resumed
            "stop_reason": self.stop_reason,
            "param_groups": [{k: float(v) if torch.is_tensor(v) else v for k, v in group.items()}
                             for group in optim["param_groups"]],
            "optim_scalars": scalars,
            "callbacks": {key: c.state_dict() for key, c in self._callback_keys() if c.state_dict()},
        }
        return tensors, meta

    def load_state_dict(self, tensors: dict, meta: dict) -> None:
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.module.load_state_dict(model_state)
        state: dict[int, dict] = {}
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                param = params[int(index)]
                if value.shape == param.shape:  # back in the parameter's layout (channels_last): fused kernels need it
                    value = torch.empty_like(param, dtype=value.dtype).copy_(value)
                state.setdefault(int(index), {})[name] = value
        for index, values in meta["optim_scalars"].items():
            state.setdefault(int(index), {}).update(values)
        lr_is_tensor = torch.is_tensor(self.optimizer.param_groups[0]["lr"])
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        if lr_is_tensor:
            for group in self.optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float64)
        self.epoch = meta["epoch"]
        self.lr_scale = meta["lr_scale"]
        self.stop_training = meta.get("stop_training", False)
        self.stop_reason = meta.get("stop_reason")
        for key, callback in self._callback_keys():
            if key in meta["callbacks"]:
                callback.load_state_dict(meta["callbacks"][key])

    def _callback_keys(self):
        """(ClassName or ClassName#2 for a repeat, callback): how a checkpoint names callback states."""
        seen: dict[str, int] = {}
        for callback in self.callbacks:
            name = type(callback).__name__
            seen[name] = seen.get(name, 0) + 1
            yield (name if seen[name] == 1 else f"{name}#{seen[name]}"), callback

    # ---- data ------------------------------------------------------------------------------------
    def _to_device(self, images, labels):
        # cached arrays are read-only memory maps; torch wants writable memory, so copy those once
        images, labels = (torch.from_numpy(np.require(a, requirements=["C", "W"])) if isinstance(a, np.ndarray)
                          else torch.as_tensor(a) for a in (images, labels))
        if getattr(self.transform, "takes_features", False):  # a head trained on a frozen backbone's features
            if not images.is_floating_point() or images.dim() != 2:
                raise ConfigError(f"features must be float N x F, got {images.dtype} {tuple(images.shape)}")
        elif images.dtype != torch.uint8 or images.dim() != 4:
            raise ConfigError(f"training images must be uint8 N x C x H x W, got {images.dtype} "
                              f"{tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ConfigError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        return images.to(self.device), labels.to(self.device, torch.int64)

    # ---- training ----------------------------------------------------------------------------------
    def fit(self, train: tuple, val: tuple | None = None) -> list[dict]:
        """Train for config.epochs (from self.epoch, so a loaded checkpoint continues); returns the
        per-epoch logs. train / val: (uint8 images N x C x H x W, int labels), numpy or torch."""
        images, labels = self._to_device(*train)
        val_data = self._to_device(*val) if val is not None else None
        batch = self.config.batch_size
        self.steps_per_epoch = math.ceil(len(labels) / batch)
        self._choose_step(images, (self.epochs - self.epoch) * len(labels))
        self._set_lr(self.lr_at(self.epoch * self.steps_per_epoch))
        self._call("on_train_begin", {"initial_epoch": self.epoch, "steps": self.steps_per_epoch})
        try:
            while self.epoch < self.epochs and not self.stop_training:
                epoch = self.epoch + 1
                self._call("on_epoch_begin", epoch, {"steps": self.steps_per_epoch})
                logs = self._train_epoch(epoch, images, labels)
                if val_data is not None:
                    result = self.evaluate(*val_data)
                    logs.update(val_loss=result.loss, val_acc=result.accuracy)
                else:
                    logs.update(val_loss=math.nan, val_acc=math.nan)
                self.epoch = epoch
                self._call("on_epoch_end", epoch, logs)
        finally:
            self._call("on_train_end", {"epoch": self.epoch})
        return self.history.epochs

    def _train_epoch(self, epoch: int, images, labels) -> dict:
        self.module.train()
        count, batch = len(labels), self.config.batch_size
        self.generator.manual_seed(epoch_seed(self.config.seed, epoch, 0))
        torch.manual_seed(epoch_seed(self.config.seed, epoch, 1))  # dropout and other module randomness
        order = torch.randperm(count, generator=self.generator, device=self.device)
        augment_fn = self._augment_fn() if self.augmentation.active else None
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen, first_step = 0, (epoch - 1) * self.steps_per_epoch
        started = last_sync = time.perf_counter()
        for step in range(self.steps_per_epoch):
            index = order[step * batch:(step + 1) * batch]
            lr = self.lr_at(first_step + step)
            self._set_lr(lr)
            loss, hits = self._step(images[index], labels[index], augment_fn)
            loss_sum.add_(loss, alpha=len(index))
            correct.add_(hits)
            seen += len(index)
            now = time.perf_counter()
            if now - last_sync > self.sync_every or step == self.steps_per_epoch - 1:
                last_sync = now
                running = loss_sum.item() / seen
                if not math.isfinite(running):
                    raise TrainingDiverged(
                        f"the training loss became {running} at epoch {epoch}, step {step + 1} (lr {lr:.3g}); "
                        f"lower train.lr, set train.grad_clip, or check the data for broken images")
                self._call("on_batch_end", step + 1, {"loss": running, "acc": correct.item() / seen,
                                                      "images_per_s": seen / max(now - started, 1e-9)})
        seconds = time.perf_counter() - started
        return {"lr": self.current_lr(), "train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen,
                "seconds": seconds, "images_per_s": seen / seconds}

    def _augment_fn(self):
        aug, generator = self.augmentation, self.generator
        return lambda x: augment(x, aug, generator)

    def _step(self, images, target, augment_fn):
        """(mean loss, correct predictions) of one optimizer step on a uint8 batch."""
        x = self.transform(images, augment=augment_fn)
        try:
            return self._train_step(x, target)
        except Exception as error:  # compiling happens on the first call; nothing was updated if it failed
            if not self.compiled or not _is_compile_failure(error):
                raise
            if self.config.compile is True:
                raise ConfigError(f"torch.compile failed ({type(error).__name__}: {str(error).splitlines()[0]}); "
                                  f"set train.compile=false (or auto) to train without it") from error
            warnings.warn(f"torch.compile failed ({type(error).__name__}); training without it", stacklevel=2)
            self.compiled, self._train_step = False, self._eager_step
            return self._train_step(x, target)

    def _eager_step(self, x, target):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp == "bf16"):
            logits = self.module(x)
            loss = self.loss_fn(logits, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return loss.detach().float(), (logits.detach().argmax(1) == target).sum()

    def _choose_step(self, images, images_to_train: int) -> None:
        """Compile the whole step (forward, loss, backward, optimizer) when train.compile says so:
        compiling only the forward left LeNet-5's backward and optimizer as many small kernels."""
        if self.compiled or self.config.compile is False:
            return
        macs = None
        if self.config.compile == "auto":
            from ..models.profile import count_macs

            macs = count_macs(self.module, self.transform(images[:1]).shape[1:])
        if resolve_compile(self.config.compile, self.device, macs, images_to_train):
            self.compiled = True
            # one graph per batch shape (the full batch and the last one) instead of a slower dynamic one
            self._train_step = torch.compile(self._eager_step, dynamic=False)

    # ---- evaluation ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_logits(self, images) -> tuple[torch.Tensor, float, int]:
        """(float32 logits on the device, seconds, images timed): eval mode, batched; the first batch
        is warm-up and is not timed (a single batch is run once more to time it)."""
        images = torch.as_tensor(images).to(self.device)
        was_training = self.module.training
        self.module.eval()
        outputs, clock, timed = [], None, 0
        try:
            for number, start in enumerate(range(0, len(images), self.eval_batch_size)):
                if number == 1:
                    _sync(self.device)
                    clock = time.perf_counter()
                outputs.append(self.infer(images[start:start + self.eval_batch_size]))
                timed += len(outputs[-1]) if number else 0
            if clock is None and len(images):
                _sync(self.device)
                clock = time.perf_counter()
                self.infer(images)
                timed = len(images)
            _sync(self.device)
            seconds = time.perf_counter() - clock if clock is not None else math.nan
        finally:
            self.module.train(was_training)
        logits = torch.cat(outputs) if outputs else torch.empty(0, device=self.device)
        return logits, seconds, timed

    def infer(self, images):
        """Logits of one uint8 batch (no grad handling: call under inference_mode, in eval mode)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp == "bf16"):
            return self.module(self.transform(images)).float()

    def evaluate(self, images, labels) -> EvalResult:
        """Plain cross-entropy (comparable across loss settings), accuracy, top-5, macro-F1."""
        images, labels = self._to_device(images, labels)
        logits, seconds, timed = self.predict_logits(images)
        return summarize(logits, labels, seconds, timed)

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)


def summarize(logits, labels, seconds: float = math.nan, timed: int = 0) -> EvalResult:
    """Metrics of logits against labels; seconds/timed give the inference throughput."""
    from .scores import macro_f1, top_k_accuracy

    logits = torch.as_tensor(logits).float()
    labels = torch.as_tensor(labels).to(logits.device)
    with torch.no_grad():
        loss = F.cross_entropy(logits, labels).item() if len(labels) else math.nan
        predicted = logits.argmax(1)
        accuracy = (predicted == labels).float().mean().item() if len(labels) else math.nan
    labels_np, predicted_np, logits_np = labels.cpu().numpy(), predicted.cpu().numpy(), logits.cpu().numpy()
    return EvalResult(loss, accuracy, top_k_accuracy(labels_np, logits_np, 5), macro_f1(labels_np, predicted_np),
                      logits_np, labels_np, seconds, timed / seconds if timed and seconds > 0 else math.nan)


def _is_compile_failure(error: Exception) -> bool:
    """torch.compile could not build the step (e.g. no C++ compiler), as opposed to an error of the step itself."""
    import torch._dynamo.exc
    import torch._inductor.exc

    return isinstance(error, (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.InternalTorchDynamoError,
                              torch._inductor.exc.InductorError))


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
