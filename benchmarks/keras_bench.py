"""Baseline: Keras 3 `model.fit` on in-memory NumPy arrays, the other yardstick for cnnlab's speed.

    bash benchmarks/setup_keras_env.sh            # once: TensorFlow in /tmp/venv-tf
    /tmp/venv-tf/bin/python benchmarks/keras_bench.py --model lenet5|rescnn [--batch 128]
        [--epochs 2] [--subset N] [--threads T] [--seed 0]

Prints one JSON line: baseline_dataloader.py's fields (no workers) plus versions and parameter
counts. Runs in its own env and never imports torch or cnnlab, so neither framework's thread
pools or allocator affect the other. The networks are rebuilt here layer for layer from
src/cnnlab/models/{lenet5,rescnn}.py, with torch's hyper-parameters where Keras's differ (BN
epsilon/momentum, init), so both sides do the same arithmetic on the same data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter off stderr; stdout is ours

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fashion_idx sits beside this script
import fashion_idx  # noqa: E402

# Trainable parameters of create_model(name, 10, 1, 28).module in cnnlab, counted with torch.
# Kept as numbers because this env has no torch; a mismatch means the models have drifted apart.
CNNLAB_TRAINABLE = {"lenet5": 61_706, "rescnn": 294_770}


def torch_default_init(fan_in: int) -> dict:
    """torch's default Conv2d/Linear init: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in)
    return {"kernel_initializer": keras.initializers.RandomUniform(-bound, bound),
            "bias_initializer": keras.initializers.RandomUniform(-bound, bound)}


def lenet5() -> keras.Model:
    x = inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(6, 5, padding="same", activation="tanh", **torch_default_init(1 * 25))(x)  # torch pads 2
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(16, 5, padding="valid", activation="tanh", **torch_default_init(6 * 25))(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)  # NHWC order, where torch flattens NCHW: a permutation, same count and cost
    x = layers.Dense(120, activation="tanh", **torch_default_init(400))(x)
    x = layers.Dense(84, activation="tanh", **torch_default_init(120))(x)
    return keras.Model(inputs, layers.Dense(10, **torch_default_init(84))(x), name="lenet5")


def conv(width: int, size: int) -> layers.Conv2D:
    # kaiming_normal_(mode="fan_out") as cnnlab does: Keras's "he_normal" is fan_in and truncated.
    init = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")
    return layers.Conv2D(width, size, padding="same", use_bias=False, kernel_initializer=init)


def bn() -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9)  # torch's eps and momentum=0.1


def basic_block(x, in_width: int, out_width: int):
    out = layers.ReLU()(bn()(conv(out_width, 3)(x)))
    out = bn()(conv(out_width, 3)(out))
    shortcut = x if in_width == out_width else bn()(conv(out_width, 1)(x))
    return layers.ReLU()(layers.Add()([out, shortcut]))


def rescnn() -> keras.Model:
    """cnnlab's rescnn defaults: stem 24, widths 24/64/128, one block per stage, max pool, dropout 0."""
    x = inputs = keras.Input((28, 28, 1))
    x = layers.ReLU()(bn()(conv(24, 3)(x)))
    x = basic_block(x, 24, 24)
    x = basic_block(layers.MaxPooling2D(2)(x), 24, 64)
    x = basic_block(layers.MaxPooling2D(2)(x), 64, 128)
    x = layers.Dropout(0.0)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(10, **torch_default_init(128))(x), name="rescnn")


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)  # TF computes in threads of this process
    return own.ru_utime + own.ru_stime


class EpochClock(keras.callbacks.Callback):
    """Wall and CPU seconds of each epoch, measured from inside fit so data setup is excluded
    the same way the DataLoader script excludes loading the arrays."""

    def __init__(self):
        super().__init__()
        self.wall, self.cpu = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()

    def on_epoch_end(self, epoch, logs=None):
        self.wall.append(time.perf_counter() - self._wall)
        self.cpu.append(cpu_seconds() - self._cpu)


def run(model: str, batch: int, epochs: int = 2, subset: int | None = None,
        threads: int | None = None, seed: int = 0) -> dict:
    if threads:  # must precede the first op; by default TF sizes both pools to the machine
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    images, labels = fashion_idx.load("train", subset)
    x = ((images.astype(np.float32) / 255 - 0.5) / 0.5)[..., None]  # NHWC, the same [-1, 1] as Normalize(0.5, 0.5)
    y = labels.astype(np.int64)

    net = {"lenet5": lenet5, "rescnn": rescnn}[model]()
    net.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    clock = EpochClock()
    history = net.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[clock])

    trainable = int(sum(np.prod(w.shape) for w in net.trainable_weights))
    if trainable != CNNLAB_TRAINABLE[model]:
        print(f"warning: {model} has {trainable} trainable parameters here, cnnlab's has "
              f"{CNNLAB_TRAINABLE[model]}", file=sys.stderr)
    n = len(x)
    return {
        "system": "keras",
        "model": model,
        "batch": batch,
        "subset": subset,
        "images": n,
        "augment": False,
        "epoch_seconds": clock.wall,
        "images_per_s": n / clock.wall[-1],  # last epoch: the first also traces the tf.function
        "cores_used": clock.cpu[-1] / clock.wall[-1],
        "threads": threads,  # null: TF's defaults (intra- and inter-op pools one thread per core)
        "jit_compile": bool(net.jit_compile),  # Keras's "auto" turns XLA off on CPU-only machines
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "params": int(net.count_params()),  # includes BN moving mean/var, which torch keeps as buffers
        "trainable_params": trainable,
        "cnnlab_trainable_params": CNNLAB_TRAINABLE[model],
        "final_train_loss": float(history.history["loss"][-1]),
        "final_train_acc": float(history.history["accuracy"][-1]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=["lenet5", "rescnn"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", type=int, default=None, help="train on the first N training images")
    p.add_argument("--threads", type=int, default=None, help="TF intra- and inter-op threads (default: TF's own)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(json.dumps(run(a.model, a.batch, a.epochs, a.subset, a.threads, a.seed)))


if __name__ == "__main__":
    main()
