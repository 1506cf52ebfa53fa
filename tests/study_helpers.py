"""Study helpers shared by test modules: a study file written, a small study planned, a user's model
module, and a study folder someone sent."""

from __future__ import annotations

from pathlib import Path

import yaml

TINY = {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "batch_size": 64, "threads": 1}}
SMALL_BASE = {"data": "digits", "model": "lenet5", "train": {"epochs": 1, "batch_size": 64}}  # threads: the plan's
SHADOWS = ("torch", "multiprocessing", "concurrent", "json", "yaml")  # names a planted file would shadow
_OWN_MODEL = '''
import json  # the real one: this module is loaded from its file, not through sys.path
from torch import nn
from cnnlab.models import register_model


class TinyNet(nn.Module):
    def __init__(self, num_classes, in_chans, width=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.net(x)


register_model("{model}", TinyNet, overwrite=True)
'''


def small_study(**fields):
    """Study 's' on SMALL_BASE with `fields` (ablate=..., grid=..., seeds=...)."""
    from cnnlab.experiments.plan import parse_study

    return parse_study({"name": "s", "base": SMALL_BASE, **fields})


def small_plan(threads: int = 1, **fields):
    """small_study(**fields) planned with `threads` per cell."""
    from cnnlab.experiments.plan import plan_study

    return plan_study(small_study(**fields), threads)


def write_study(folder: Path, study: dict, name: str | None = None) -> Path:
    """`study` as the YAML file <folder>/<name or the study's name>.yaml."""
    path = folder / f"{name or study['name']}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def own_model_source(model: str) -> str:
    """A module that registers a tiny CNN as `model` (for a study's imports:)."""
    return _OWN_MODEL.replace("{model}", model)


def sent_folder(tmp_path: Path, study: dict, modules: dict[str, str] = {}) -> tuple[Path, Path]:
    """A study file with a module shadowing each of SHADOWS beside it (each writes a sentinel when
    imported) and `modules` (name -> source); returns (the study file, the sentinel folder)."""
    folder, sentinels = tmp_path / "downloaded", tmp_path / "sentinels"
    folder.mkdir()
    sentinels.mkdir()
    for name in SHADOWS:
        (folder / f"{name}.py").write_text(f"open({str(sentinels / name)!r}, 'w').close()\n")
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path, sentinels
