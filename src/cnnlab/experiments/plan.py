"""Study files and their cells: a base config, one-factor ablations and/or a grid, over seeds.

    name: emnist-optimizers
    base: {data: emnist-balanced, model: {name: rescnn, blocks: 2}, train: {epochs: 50, batch_size: 500}}
    ablate: {train.optimizer: [sgd, adam], model.activation: [relu, gelu]}   # one factor at a time
    # a factor may also be a whole section (model: [lenet5, {name: rescnn, blocks: 2}]) or a name whose
    # values are sets of changes (loss: [{train.loss: focal, train.focal_gamma: 2}, ...])
    grid: {}                                                                 # or a cartesian product
    seeds: 5                                                                 # or a list: [0, 3, 7]
    imports: [my_models]                                                     # modules that register things

Planning is pure: every cell's config is validated here (keys, types, ranges), once, into a frozen
RunConfig that the study passes on to where the cell runs; checks.py checks what needs the dataset and
the model. A cell is named readably and by a hash of its validated config (seed and thread count
included), so an ablation value equal to the base is the base cell, run once.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..config import ModelConfig, RunConfig, build_config, read_yaml_mapping, set_dotted, to_dict
from ..errors import CnnlabError, ConfigError
from ..studyfolder import CellRecord, RowRecord

DEFAULT_SEEDS = 5
MAX_SEEDS = 1_000
MAX_ROWS = 100_000  # table rows a study may plan (every one is validated before anything runs)
WHOLE_SECTIONS = ("data", "model", "augment")  # factors that replace a whole section (model: [lenet5, resnet50])
FACTOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")  # becomes a folder name


class StudySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="the study's name (its default folder)")
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict, description="the run config every cell starts from")
    ablate: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values, one at a time")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values, every combination")
    seeds: int | list[int] = Field(DEFAULT_SEEDS, description="how many seeds (0..n-1), or which")
    imports: list[str] = Field(default_factory=list, description="modules to import first (own models, datasets)")

    @field_validator("seeds", mode="before")
    @classmethod
    def _no_bool_seeds(cls, value):
        if isinstance(value, bool):
            raise ValueError("must be a number of seeds or a list of seeds, not true/false")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1")
        if isinstance(value, int) and value > MAX_SEEDS:
            raise ValueError(f"must be at most {MAX_SEEDS:,}")
        if isinstance(value, list) and len(value) > MAX_SEEDS:
            raise ValueError(f"must list at most {MAX_SEEDS:,} seeds")
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("must be a non-empty list of distinct integers")
        return value

    @field_validator("ablate", "grid")
    @classmethod
    def _values(cls, value):
        for key, values in value.items():
            if not values:
                raise ValueError(f"{key} has no values; give at least one, or leave the factor out")
        return value

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def load_study(path: str | Path) -> tuple[StudySpec, Path]:
    """Read and validate a study file (YAML, safe_load); returns the spec and the file's folder."""
    path = Path(path)
    tree = read_yaml_mapping(path, "a study file is a mapping with name, base, ablate, grid, seeds, imports",
                             what="the study file", allow_empty=False)
    tree.setdefault("name", path.stem)
    return parse_study(tree, str(path)), path.resolve().parent


def parse_study(tree: dict, where: str = "the study") -> StudySpec:
    try:
        return StudySpec.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown study key {key!r} (valid: {', '.join(StudySpec.model_fields)})")
            else:
                problems.append(f"{key}: {error['msg'].replace('Value error, ', '')} (got {error.get('input')!r})")
        raise ConfigError(f"{where}: {'; '.join(problems)}") from None


def import_user_modules(imports: list[str], search_path: list[str] = ()) -> list[tuple[str, str]]:
    """Import the modules a study names in `imports:` (they register models or datasets) in this
    process; returns (name, file) of each. A module in a `search_path` folder (the study file's) is
    loaded from its file; any other comes from the installed packages or PYTHONPATH. sys.path is
    never changed, so nothing else in the study's folder can shadow a module cnnlab imports."""
    imported = []
    for name in imports:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"imports: {name!r} is not a module name; list dotted Python module names such as "
                              f"my_models or my_package.models")
        try:
            module = _import_beside(name, [Path(f) for f in search_path]) or importlib.import_module(name)
        except CnnlabError:
            raise
        except (Exception, SystemExit) as exc:  # the user's module: any error is theirs to see, in one line
            raise ConfigError(f"imports: cannot import {name!r} ({type(exc).__name__}: {exc}); put {name}.py "
                              f"beside the study file or on PYTHONPATH, and check that importing it works") from None
        imported.append((name, str(getattr(module, "__file__", None) or "(built-in)")))
    return imported


def _import_beside(name: str, folders: list[Path]):
    """`name` loaded from <folder>/<top>.py or <folder>/<top>/__init__.py of the first folder that has
    one, registered in sys.modules under its name (so a model recorded as user:NAME:Class resolves and
    dotted names work); None when no folder has it. A module already loaded from that file is reused."""
    import importlib.util

    top = name.partition(".")[0]
    for folder in folders:
        package = folder / top / "__init__.py"
        path = package if package.is_file() else folder / f"{top}.py"
        if not path.is_file():
            continue
        path = path.resolve()
        loaded = sys.modules.get(top)
        if loaded is not None:
            if Path(getattr(loaded, "__file__", None) or "").resolve() != path:
                raise ConfigError(f"imports: {top!r} in {folder} has the name of a module already imported from "
                                  f"{getattr(loaded, '__file__', None) or 'the interpreter'}; rename {path.name} "
                                  f"(and its entry in imports:)")
        else:
            installed = importlib.util.find_spec(top)  # a top-level name: found, not imported
            if installed is not None and Path(installed.origin or "").resolve() != path:
                # a study file naming `torch` beside a torch.py must not replace the real one
                raise ConfigError(f"imports: {top!r} in {folder} has the name of an installed module "
                                  f"({installed.origin or 'built in'}), which it would replace in every worker; "
                                  f"rename {path.name} (and its entry in imports:)")
            locations = [str(path.parent)] if path.name == "__init__.py" else None
            spec = importlib.util.spec_from_file_location(top, path, submodule_search_locations=locations)
            module = importlib.util.module_from_spec(spec)
            sys.modules[top] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(top, None)
                raise
        return importlib.import_module(name)  # a package's submodules resolve through its __path__
    return None


# ---- cells --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    spec: StudySpec
    cells: list[CellRecord]  # distinct runs, in the order they run
    rows: list[RowRecord]  # the tables' rows: (factor, value, seed) -> cell
    threads: int
    configs: dict[str, RunConfig]  # cell key -> its validated config (a CellRecord's config is its dict)

    def config(self, cell: CellRecord) -> RunConfig:
        return self.configs[cell.key]


def config_key(config: RunConfig) -> str:
    text = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def value_label(value: Any) -> str:
    """A short, file-name-safe label of a factor value: 'sgd', '0.001', '32-64', 'lenet5-activation_relu'."""
    if isinstance(value, dict):
        rest = [f"{k.split('.')[-1]}_{value_label(v)}" for k, v in value.items() if k != "name"]
        text = "-".join([str(value.get("name", "")), *rest]).strip("-")
    elif isinstance(value, (list, tuple)):
        text = "-".join(value_label(v) for v in value)
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:80] or "_"


def _short_names(keys: list[str]) -> dict[str, str]:
    """Factor folder names: the last part of the key unless two factors share it."""
    last = {k: k.split(".")[-1] for k in keys}
    counts = {v: list(last.values()).count(v) for v in last.values()}
    return {k: (last[k] if counts[last[k]] == 1 else k) for k in keys}


def _with(base: dict, changes: dict) -> dict:
    tree = json.loads(json.dumps(base))
    for section in ("data", "model"):  # `data: NAME` short form, so a dotted change can go inside it
        if isinstance(tree.get(section), str):
            tree[section] = {"name": tree[section]}
    for key, value in changes.items():
        if key in WHOLE_SECTIONS or "." in key:
            set_dotted(tree, key, value)
        elif isinstance(value, dict) and value and all("." in k for k in value):
            for inner, inner_value in value.items():  # a named factor whose values are sets of changes
                set_dotted(tree, inner, inner_value)
        else:
            raise ConfigError(f"factor {key!r} must be a dotted config key such as train.lr or model.activation, a "
                              f"whole section ({', '.join(WHOLE_SECTIONS)}), or a name whose values are mappings of "
                              f"dotted keys (loss: [{{train.loss: focal, train.focal_gamma: 2}}])")
    return tree


def plan_study(spec: StudySpec, threads: int) -> Plan:
    """Every cell of the study, validated as configs (keys, types, ranges); checks.check_plan checks the rest."""
    cells: dict[str, CellRecord] = {}
    configs: dict[str, RunConfig] = {}
    rows: list[RowRecord] = []
    short = _short_names([*spec.ablate, *spec.grid])

    def cell(folder: str, changes: dict, seed: int) -> CellRecord:
        tree = _with(spec.base, changes)
        if tree.get("train") is None:  # `train:` left empty in YAML
            tree["train"] = {}
        if isinstance(tree["train"], dict):  # anything else is refused by build_config below, naming the cell
            tree["train"] = {"threads": threads, **tree["train"], "seed": seed}
        try:
            config = _with_model_defaults(build_config(tree))
        except CnnlabError as exc:
            where = ", ".join(f"{k}={value_label(v)}" for k, v in changes.items()) or "base"
            raise type(exc)(f"study {spec.name!r}, cell {where}: {exc}") from None
        key = config_key(config)
        if key not in cells:
            cells[key] = CellRecord(f"{folder}/seed={seed}-{key}", key, seed, to_dict(config))
            configs[key] = config
        return cells[key]

    combos = math.prod(len(v) for v in spec.grid.values()) if spec.grid else 0
    planned = len(spec.seed_list) * (1 + sum(len(v) for v in spec.ablate.values()) + combos)
    if planned > MAX_ROWS:
        raise ConfigError(f"study {spec.name!r} plans {planned:,} runs (seeds x values), more than {MAX_ROWS:,}; "
                          f"use fewer seeds, factors or grid values")
    for key in [*spec.ablate, *spec.grid]:
        if not FACTOR_NAME.match(key):
            raise ConfigError(f"study {spec.name!r}: factor {key!r} is not a config key or a name (letters, digits and "
                              f"_ in dotted parts, such as train.lr, model.activation or loss)")
        if key == "train.seed":
            raise ConfigError(f"study {spec.name!r}: train.seed cannot be a factor; the study sets it from `seeds:`")
    labels: dict[tuple[str, str], str] = {}  # (factor, label) -> the value it stands for

    def label(factor: str, value: Any) -> str:
        """value_label, made unique within the factor: two values must never share a table row."""
        text, identity = value_label(value), json.dumps(value, sort_keys=True, default=str)
        if labels.setdefault((factor, text), identity) != identity:
            text = f"{text}~{hashlib.sha256(identity.encode()).hexdigest()[:6]}"
            labels[(factor, text)] = identity
        return text

    for seed in spec.seed_list:
        base = cell("base", {}, seed)
        rows.append(RowRecord("base", "base", seed, base.name))
        for key, values in spec.ablate.items():
            for value in values:
                text = label(key, value)
                record = cell(f"{short[key]}={text}", {key: value}, seed)
                rows.append(RowRecord(key, text, seed, record.name))
        if spec.grid:
            keys = list(spec.grid)
            for combo in itertools.product(*(spec.grid[k] for k in keys)):
                text = ",".join(f"{short[k]}={label(k, v)}" for k, v in zip(keys, combo))
                record = cell(text, dict(zip(keys, combo)), seed)
                rows.append(RowRecord("grid", text, seed, record.name))
    return Plan(spec, list(cells.values()), rows, threads, configs)


def _with_model_defaults(config: RunConfig) -> RunConfig:
    """The config with the model's option defaults written out, so a value equal to a default is the
    same cell as leaving it out (rescnn's blocks: 1, dropout: 0.0, activation: relu). The rest of the
    config is valid already: only the model section is validated again."""
    from ..models.factory import builder_defaults

    model = config.model.model_dump(mode="json")
    filled = {**builder_defaults(config.model.name), **model}
    return config if filled == model else config.model_copy(update={"model": ModelConfig.model_validate(filled)})
