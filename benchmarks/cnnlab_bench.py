"""cnnlab's side of the training-speed comparison: the same data, model, batch and optimizer as
baseline_dataloader.py and keras_bench.py, trained by cnnlab's Trainer.

    python benchmarks/cnnlab_bench.py --model lenet5|rescnn [--batch 128] [--epochs 2] [--subset N]
        [--augment] [--threads T] [--compile auto|true|false] [--no-channels-last]

Prints one JSON line with the same fields as the baselines. --augment uses the batched
equivalent of the baseline's RandomAffine(degrees=10, translate=0.1, scale=(0.9, 1.1), shear=10).
--compile auto (the default) compiles the step when train.compile=auto would in a full-length run
(--full-run-epochs of the whole training set), not in this 2-epoch measurement, whose compile time
would otherwise decide it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_idx

from cnnlab.config import TrainConfig
from cnnlab.engine.augment import Augmentation
from cnnlab.engine.callbacks import Callback
from cnnlab.engine.trainer import Trainer
from cnnlab.models import create_model

BASELINE_AFFINE = Augmentation(rotation=10, shift=0.1, scale=0.1, shear=10)


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


class CpuClock(Callback):
    """CPU seconds per epoch, to report how many cores the epoch kept busy."""

    def __init__(self):
        self.cpu = []

    def on_epoch_begin(self, epoch, logs):
        self._start = cpu_seconds()

    def on_epoch_end(self, epoch, logs):
        self.cpu.append(cpu_seconds() - self._start)


def full_run_choice(model: str, full_run_epochs: int) -> bool:
    """What train.compile=auto decides for `model` trained full_run_epochs on Fashion-MNIST's 60,000."""
    from cnnlab.engine.device import resolve_compile
    from cnnlab.models.profile import profile_model

    return resolve_compile("auto", torch.device("cpu"), profile_model(model, 10, 1, 28).macs, 60_000 * full_run_epochs)


def run(model: str, batch: int, epochs: int = 2, subset: int | None = None, augment: bool = False,
        threads: int | None = None, compile: bool | str = "auto", channels_last: bool = True, seed: int = 0,
        full_run_epochs: int = 20) -> dict:
    images, labels = fashion_idx.load("train", subset)
    if compile == "auto":
        compile = full_run_choice(model, full_run_epochs)
    config = TrainConfig(epochs=epochs, batch_size=batch, seed=seed, threads=threads, compile=compile,
                         channels_last=channels_last, device="cpu")
    torch.manual_seed(seed)
    built = create_model(model, 10, 1, 28)
    clock = CpuClock()
    trainer = Trainer(built.module, built.transform, config, callbacks=[clock],
                      augmentation=BASELINE_AFFINE if augment else None)
    history = trainer.fit((images[:, None], labels))
    last = history[-1]
    return {
        "system": "cnnlab",
        "model": model,
        "batch": batch,
        "subset": subset,
        "images": len(images),
        "augment": augment,
        "compiled": trainer.compiled,
        "channels_last": channels_last,
        "epoch_seconds": [h["seconds"] for h in history],
        "images_per_s": last["images_per_s"],
        "cores_used": clock.cpu[-1] / last["seconds"],
        "threads": trainer.threads,
        "torch_version": torch.__version__,
        "final_train_loss": last["train_loss"],
        "final_train_acc": last["train_acc"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=["lenet5", "rescnn"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--augment", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", choices=["auto", "true", "false"], default="auto")
    p.add_argument("--full-run-epochs", type=int, default=20, help="the run length --compile auto decides for")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    compile = {"true": True, "false": False}.get(a.compile, "auto")
    print(json.dumps(run(a.model, a.batch, a.epochs, a.subset, a.augment, a.threads, compile, a.channels_last,
                         a.seed, a.full_run_epochs)))


if __name__ == "__main__":
    main()
