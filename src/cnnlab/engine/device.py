"""Device, precision and thread choices, made once per run and recorded."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path

from ..errors import ConfigError, bad_value


def resolve_device(name: str = "auto"):
    """'auto' → CUDA when visible, else CPU; 'cuda' without a GPU is an error, not a silent CPU run.
    (train.device's other values are refused by the config.)"""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is visible; set train.device=auto or cpu")
    return torch.device(name)


def resolve_amp(amp: str, device) -> str:
    """'auto' → bf16 autocast where the hardware computes in bf16 natively: a CUDA device that has
    it, or a CPU with AVX512-BF16 / AMX (measured 1.5x faster for rescnn on such a CPU, while CPUs
    that only emulate bf16 were slower with it); off elsewhere."""
    import torch

    if amp == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "off"
        return "bf16" if cpu_has_native_bf16() else "off"
    if amp not in ("off", "bf16"):
        raise bad_value("amp", "the trainer", "auto, off or bf16", amp)
    return amp


# "auto" compiles a CPU run only where it was measured to pay: a model whose step is per-op overhead
# (LeNet-5, 0.4 M MACs: 1.2-1.3x with the whole step compiled) trained on enough images to earn back
# the ~5-10 s of compiling; convolution-bound models got slower (rescnn, 30 M MACs: 0.65x).
COMPILE_MAX_MACS = 4_000_000
COMPILE_MIN_IMAGES = 1_000_000


def resolve_compile(setting: bool | str, device, macs_per_image: int | None, images_to_train: int) -> bool:
    """train.compile: true / false as given; 'auto' per the measured rule above. CUDA stays eager
    under 'auto' because compile has not been measured on a GPU yet."""
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise bad_value("compile", "the trainer", "auto, true or false", setting)
    return (device.type == "cpu" and macs_per_image is not None and macs_per_image <= COMPILE_MAX_MACS
            and images_to_train >= COMPILE_MIN_IMAGES)


def cpu_has_native_bf16() -> bool:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def set_threads(threads: int | None) -> int:
    """Fix the CPU thread count (it changes floating-point results); None keeps torch's default."""
    import torch

    if threads is not None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return torch.get_num_threads()


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks for reuse instead of returning them to the OS.

    Every training step frees and reallocates the same activation buffers (megabytes each). Above
    glibc's mmap threshold each one is a fresh mmap whose pages fault in on first touch; glibc
    raises the threshold only after a large enough block happens to be freed. Fixing the
    thresholds up front made a LeNet-5 epoch 1.3x faster on a 2-core CPU. No-op off glibc.
    """
    import ctypes
    import ctypes.util

    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 1 << 30))


def tune_backends(device) -> None:
    import torch

    if device.type == "cpu":
        keep_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def environment(device, threads: int) -> dict:
    """What env.json records: versions, machine, device, threads, git hash."""
    import numpy
    import torch

    from .. import __version__

    versions = {"cnnlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "numpy": numpy.__version__}
    for name in ("torchvision", "timm"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    env = {
        "versions": versions,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "host": socket.gethostname(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": threads,
        "git": _git_hash(),
    }
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_hash() -> str | None:
    """The commit of the cnnlab source in use, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
