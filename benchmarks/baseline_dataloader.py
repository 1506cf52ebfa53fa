"""Baseline: the conventional PyTorch training loop that cnnlab's trainer is compared against.

    python benchmarks/baseline_dataloader.py --model lenet5|rescnn [--batch 128] [--epochs 2]
        [--subset N] [--augment] [--workers W] [--threads T] [--seed 0]

Prints one JSON line (see `run`). It is written the way tutorials and most user code write it:
a torchvision-style Dataset that makes a PIL image per sample and runs the transforms on it,
a DataLoader with default collation, contiguous NCHW tensors, Adam and a `.item()` per step.
Only the network comes from cnnlab, so both sides train the same model and the difference
measured is the data pipeline and the loop, not the architecture.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fashion_idx sits beside this script
import fashion_idx  # noqa: E402

try:
    from cnnlab.models import create_model
except ImportError:  # not pip-installed (or a stale editable install): use this checkout's src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cnnlab.models import create_model


class FashionArrays(Dataset):
    """torchvision.datasets.FashionMNIST's __getitem__, over arrays already in memory."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        img = Image.fromarray(self.images[index], mode="L")  # a PIL image per sample, as torchvision does
        return self.transform(img), int(self.labels[index])


def make_transform(augment: bool):
    steps = [transforms.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10)] if augment else []
    return transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


def cpu_seconds() -> float:
    """User + system CPU of this process and of its reaped children. DataLoader workers are
    joined when an epoch's iterator is exhausted (persistent_workers=False), so their CPU is
    counted in the epoch that used them."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(model: str, batch: int, epochs: int = 2, subset: int | None = None, augment: bool = False,
        workers: int = 0, threads: int | None = None, seed: int = 0) -> dict:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    images, labels = fashion_idx.load("train", subset)
    loader = DataLoader(FashionArrays(images, labels, make_transform(augment)),
                        batch_size=batch, shuffle=True, num_workers=workers)
    net = create_model(model, 10, 1, 28).module  # contiguous NCHW: the conventional code never asks for channels_last
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    epoch_seconds, epoch_cpu = [], []
    for _ in range(epochs):
        wall, cpu = time.perf_counter(), cpu_seconds()
        net.train()
        running_loss, correct = 0.0, 0
        for x, y in loader:
            opt.zero_grad()
            out = net(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            running_loss += loss.item()
            correct += (out.argmax(1) == y).sum().item()
        epoch_seconds.append(time.perf_counter() - wall)
        epoch_cpu.append(cpu_seconds() - cpu)

    n = len(images)
    return {
        "system": "dataloader",
        "model": model,
        "batch": batch,
        "subset": subset,
        "images": n,
        "augment": augment,
        "workers": workers,
        "epoch_seconds": epoch_seconds,
        "images_per_s": n / epoch_seconds[-1],  # last epoch: the first pays one-off start-up costs
        "cores_used": epoch_cpu[-1] / epoch_seconds[-1],
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "final_train_loss": running_loss / len(loader),
        "final_train_acc": correct / n,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=["lenet5", "rescnn"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", type=int, default=None, help="train on the first N training images")
    p.add_argument("--augment", action="store_true", help="per-sample RandomAffine, as a torchvision user would")
    p.add_argument("--workers", type=int, default=0, help="DataLoader num_workers")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(json.dumps(run(a.model, a.batch, a.epochs, a.subset, a.augment, a.workers, a.threads, a.seed)))


if __name__ == "__main__":
    main()
