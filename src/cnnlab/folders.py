"""What a folder given to the analysis is: one run, a folder of seeds (runs side by side, such as a
study's `optimizer=sgd/`), or a study. Answered once here, so compare, select and report accept the
same folders and refuse the others in the same words.

Importing this module imports neither torch nor pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .runfolder import CONFIG, PREDICTIONS, SUMMARY, RunFolder, runs_in
from .studyfolder import MANIFEST, study_groups


@dataclass(frozen=True)
class RunRef:
    """A run folder (it holds summary.json: finished or failed)."""

    path: Path

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)


@dataclass(frozen=True)
class SeedGroupRef:
    """A folder of run folders, typically one value of a study factor over its seeds."""

    path: Path
    runs: tuple[Path, ...]  # the run folders directly inside, by name


@dataclass(frozen=True)
class StudyRef:
    """A study folder (it holds study.json) and its `<factor=value>/` folders that hold runs."""

    path: Path
    groups: tuple[SeedGroupRef, ...]

    @property
    def runs(self) -> list[Path]:
        return [run for group in self.groups for run in group.runs]


FolderRef = RunRef | SeedGroupRef | StudyRef
ALL_KINDS: tuple[type, ...] = (RunRef, SeedGroupRef, StudyRef)

_GIVE = {RunRef: "run folders", SeedGroupRef: "folders of seeds (a study's optimizer=sgd/)",
         StudyRef: "a study folder"}


def resolve_folder(path: str | Path, accept: Sequence[type] = ALL_KINDS, need_predictions: bool = False) -> FolderRef:
    """What `path` is, among the kinds in `accept`; a DataError that says what it is instead, and what to
    give, otherwise. With `need_predictions`, a run must hold predictions.npz."""
    path = Path(path)
    give = "give " + _either([_GIVE[kind] for kind in accept], "or")
    if (path / MANIFEST).exists():
        if StudyRef not in accept:
            raise DataError(f"{path} is a study folder; {give}")
        groups = (SeedGroupRef(group, tuple(runs_in(group))) for group in study_groups(path))
        return StudyRef(path, tuple(group for group in groups if group.runs))
    if (path / SUMMARY).exists():
        if RunRef not in accept:
            raise DataError(f"{path} is a run folder; {give}")
        if need_predictions and not (path / PREDICTIONS).exists():
            raise DataError(f"{path} is a run without {PREDICTIONS}; write it with `cnnlab evaluate {path}`")
        return RunRef(path)
    if not path.exists():
        raise DataError(f"{path}: no such folder, so it holds no finished run folders; {give}")
    if not path.is_dir():
        raise DataError(f"{path} is a file, not a run folder; {give}")
    if (path / CONFIG).exists():
        raise DataError(f"{path} is an unfinished run ({SUMMARY} is missing); finish it with "
                        f"`cnnlab train --out {path} --resume` or leave it out")
    runs = runs_in(path)
    if runs and SeedGroupRef in accept:
        return SeedGroupRef(path, tuple(runs))
    what = {RunRef: f"a run folder ({SUMMARY}{f' and {PREDICTIONS}' if need_predictions else ''})",
            SeedGroupRef: "a folder of seeds (it holds no finished run folders)",
            StudyRef: f"a study folder ({MANIFEST})"}
    kinds = [what[kind] for kind in accept]
    if runs:
        raise DataError(f"{path} is a folder of seeds, not {_either(kinds, 'or')}; give the run folders in it")
    if len(kinds) == 1:
        raise DataError(f"{path} is not {kinds[0]}; {give}")
    raise DataError(f"{path} is neither {_either(kinds, 'nor')}; {give}")


def resolve_folders(paths: Iterable[str | Path], accept: Sequence[type] = ALL_KINDS,
                    need_predictions: bool = False) -> list[FolderRef]:
    """resolve_folder for each path, in order."""
    return [resolve_folder(path, accept, need_predictions) for path in paths]


def _either(items: list[str], word: str) -> str:
    """'a', 'a or b', 'a, b or c' (word: 'or' or 'nor')."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"
