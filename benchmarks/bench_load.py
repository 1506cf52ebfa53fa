"""Cold and warm load times: every dataset on this machine, and an EMNIST-byclass-sized dataset.

    python benchmarks/bench_load.py [--shared ../shared/data] [--repeats 3]

Cold = parse the raw files (gunzip, validate, transpose) and write the cache; warm = read the
cache. Each load runs in a fresh process so the warm figure includes nothing held in memory
(the OS page cache is warm, as it is for a user who loads the same data twice in a day).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, time
t = time.perf_counter()
from cnnlab.data import load_dataset
ds = load_dataset(sys.argv[1], download=False, progress=False)
n = sum(len(s) for s in ds.splits.values())
print(json.dumps({"seconds": time.perf_counter() - t, "images": n}))
"""


def timed_load(name: str, home: Path) -> dict:
    env = {**os.environ, "CNNLAB_DATA": str(home), "CNNLAB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, name], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_seconds() -> float:
    """Process start + `import cnnlab.data`, subtracted nowhere but reported beside the figures."""
    code = "import time; t=time.perf_counter(); import cnnlab.data; print(time.perf_counter()-t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def make_byclass_sized(home: Path, shared: Path) -> None:
    """697,932 real EMNIST images (bymerge test tiled 6×) as byclass's train files, for a realistic gzip."""
    from cnnlab.data.idx import read_idx, write_idx
    import numpy as np

    images = read_idx(shared / "emnist" / "emnist-bymerge-test-images-idx3-ubyte.gz")
    labels = read_idx(shared / "emnist" / "emnist-bymerge-test-labels-idx1-ubyte.gz")
    n = 697_932
    reps = -(-n // len(images))
    raw = home / "raw" / "emnist"
    raw.mkdir(parents=True, exist_ok=True)
    write_idx(raw / "emnist-byclass-train-images-idx3-ubyte.gz", np.tile(images, (reps, 1, 1))[:n])
    write_idx(raw / "emnist-byclass-train-labels-idx1-ubyte.gz", np.tile(labels, reps)[:n])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-byclass", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        from cnnlab.data.load import add_local

        os.environ["CNNLAB_DATA"] = str(home)
        names = ["digits", "fashion-mnist"]
        if args.shared.exists():
            add_local("mnist", args.shared / "mnist")
            add_local("emnist", args.shared / "emnist")
            add_local("cifar10", args.shared / "cifar10" / "cifar-10-python-subset.tar.gz")
            names += ["mnist", "emnist-bymerge", "emnist-mnist", "emnist-balanced", "emnist-letters",
                      "emnist-digits", "cifar10"]
            if not args.skip_byclass:
                make_byclass_sized(home, args.shared)
                names.append("emnist-byclass")
        print(f"process start + import cnnlab.data: {import_seconds():.2f} s")
        print(f"| dataset | images | cold load (s) | warm load (s, median of {args.repeats}) |")
        print("|---|---:|---:|---:|")
        for name in names:
            shutil.rmtree(home / "arrays", ignore_errors=True)
            cold = timed_load(name, home)
            warm = [timed_load(name, home)["seconds"] for _ in range(args.repeats)]
            print(f"| {name} | {cold['images']:,} | {cold['seconds']:.2f} | {statistics.median(warm):.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
