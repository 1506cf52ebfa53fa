"""A study's results: one frame of every cell, and per factor the reference study's table (value,
test loss, test accuracy, macro-F1, training time, parameters) as mean ± 95 % CI over seeds, the best
value chosen by validation accuracy, and whether its lead over the base is significant (paired over
seeds, Holm-corrected within the factor). Where some runs freeze part of their model (transfer
learning), the tables also show how many parameters train. Reads only the study's manifest and run
folders."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError, bad_value
from ..registry import Registry
from ..runfolder import SUMMARY
from ..studyfolder import StudyFolder
from .stats import check_alpha, holm, mean_ci, paired_test

COLUMNS = [  # (frame column, table heading, scale, digits)
    ("test_loss", "test loss", 1.0, 3),
    ("test_accuracy", "test acc %", 100.0, 2),
    ("test_macro_f1", "macro-F1 %", 100.0, 2),
    ("train_seconds", "train s", 1.0, 1),
    ("params", "params", 1.0, 0),
    ("val_accuracy", "val acc %", 100.0, 2),
]
# After params, in the tables of a study where some runs train fewer parameters than they have (a
# frozen backbone); elsewhere it would repeat params.
TRAINABLE = ("trainable_params", "trainable", 1.0, 0)
COUNTS = ("params", "trainable_params")  # whole numbers, without an interval


def collect_results(path: str | Path):
    """A pandas frame with one row per (factor, value, seed): the cell, its state and its metrics."""
    import pandas as pd

    folder = StudyFolder(path)
    cells = {c.name: c for c in folder.cells()}
    rows = []
    for row in folder.rows():
        run = folder.run(row.cell)
        state = folder.cell_state(cells[row.cell])
        record = {"factor": row.factor, "value": row.value, "seed": row.seed, "cell": row.cell, "status": state}
        if state in ("finished", "failed"):
            summary = run.read_summary()
            record["error"] = summary.get("error")
            for split in ("val", "test"):
                scores = summary.get(split) or {}
                for metric, value in (scores.items() if isinstance(scores, dict) else [(None, scores)]):
                    record[f"{split}_{metric}"] = _number(value, f"{split}.{metric}" if metric else split, run)
            for key in ("params", "trainable_params", "frozen_params", "train_seconds", "images_per_s", "best_epoch",
                        "epochs_run"):
                record[key] = _number(summary.get(key), key, run)
        rows.append(record)
    frame = pd.DataFrame(rows)
    for column, *_ in (*COLUMNS, TRAINABLE):
        if column not in frame:
            frame[column] = math.nan
    return frame


def _number(value, key: str, run) -> float | int | None:
    """A figure of a cell's summary.json; a DataError naming the file and the entry when it is not a number."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise DataError(f"{run.file(SUMMARY)}: {key!r} is {value!r}, not a number; restore the file, or delete it and "
                    f"run the study again to retrain the cell")


@dataclass
class FactorTable:
    factor: str
    rows: list[dict]  # value, n, then per COLUMNS and TRAINABLE key a MeanCI, plus delta / p / p_holm / best
    best: str | None  # the value with the highest mean validation accuracy
    verdict: str  # one sentence on the best value's lead over the base
    notes: list[str] = field(default_factory=list)


def study_tables(path: str | Path, alpha: float = 0.05) -> list[FactorTable]:
    """One table per factor (the base alone when the study ablates nothing)."""
    check_alpha(alpha, "study_tables")
    frame = collect_results(path)
    finished = frame[frame["status"] == "finished"]
    base = finished[finished["factor"] == "base"].set_index("seed")
    base_cells = set(frame[frame["factor"] == "base"]["cell"])
    factors = [f for f in dict.fromkeys(frame["factor"]) if f != "base"] or ["base"]
    tables = []
    for factor in factors:
        listed = frame[frame["factor"] == factor]
        values = list(dict.fromkeys(listed["value"]))
        # the value whose cells are the base's cells (an ablation value equal to the base) stands for it
        same = [v for v in values if set(listed[listed["value"] == v]["cell"]) == base_cells]
        if factor != "base" and not same:
            values = ["base", *values]
        rows = []
        for value in values:
            is_base = value == "base" or value in same
            cells = base.reset_index() if is_base else finished[(finished["factor"] == factor) &
                                                                 (finished["value"] == value)]
            row = {"value": value if value == "base" or not is_base else f"{value} (base)", "n": len(cells),
                   "is_base": is_base}
            for column, *_ in (*COLUMNS, TRAINABLE):
                row[column] = mean_ci(cells[column].tolist())
            row.update(delta=math.nan, p=math.nan, p_holm=math.nan, note="")
            if not is_base and len(cells):
                paired = cells[["seed", "test_accuracy"]].merge(
                    base.reset_index()[["seed", "test_accuracy"]], on="seed", suffixes=("", "_base"))
                test = paired_test(paired["test_accuracy"], paired["test_accuracy_base"], alpha)
                row.update(delta=test.mean_difference, p=test.t_p, note=test.note)
            rows.append(row)
        adjusted = holm([r["p"] for r in rows])
        for row, p in zip(rows, adjusted):
            row["p_holm"] = p
        scored = [r for r in rows if math.isfinite(r["val_accuracy"].mean)]
        best = max(scored, key=lambda r: r["val_accuracy"].mean) if scored else None
        for row in rows:
            row["best"] = row is best
        tables.append(FactorTable(factor, rows, best["value"] if best else None, _verdict(factor, rows, best, alpha),
                                  sorted({r["note"] for r in rows if r["note"]})))
    return tables


def _verdict(factor: str, rows: list[dict], best: dict | None, alpha: float) -> str:
    if best is None:
        return "no finished cells yet"
    if factor == "base":
        return "the base configuration alone"
    if best["is_base"]:
        return f"the base value is the best of {factor} by validation accuracy"
    name = best["value"]
    if not math.isfinite(best["p_holm"]):
        return (f"best by validation: {name}; its test-accuracy lead over the base ({best['delta'] * 100:+.2f} points) "
                f"cannot be tested with {best['n']} seed(s)")
    significant = best["p_holm"] < alpha
    return (f"best by validation: {name}; test accuracy {best['delta'] * 100:+.2f} points over the base, paired t "
            f"p = {best['p']:.3g} (Holm {best['p_holm']:.3g}): "
            f"{'significant' if significant else 'not significant'} at {alpha:g}")


# ---- formats ------------------------------------------------------------------------------------
def shows_trainable(tables: list[FactorTable]) -> bool:
    """Whether some value's runs train fewer parameters than they have, so a trainable column says something."""
    return any(math.isfinite(r["trainable_params"].mean) and r["trainable_params"].mean != r["params"].mean
               for table in tables for r in table.rows if "trainable_params" in r)


def columns(trainable: bool = False) -> list[tuple[str, str, float, int]]:
    """COLUMNS, with the trainable parameters after params when `trainable`."""
    if not trainable:
        return list(COLUMNS)
    after = [c[0] for c in COLUMNS].index("params") + 1
    return [*COLUMNS[:after], TRAINABLE, *COLUMNS[after:]]


def headings(trainable: bool = False) -> list[str]:
    return ["value", "seeds", *[c[1] for c in columns(trainable)], "Δ test acc", "p (Holm)"]


def formatted_row(row: dict, sep: str = " ± ", trainable: bool = False) -> list[str]:
    """A table row as the strings every format shows (★ marks the best value by validation)."""
    out = [("★ " if row["best"] else "") + row["value"], str(row["n"])]
    for column, _, scale, digits in columns(trainable):
        out.append(format_count(row[column].mean) if column in COUNTS else row[column].format(scale, digits, sep))
    out.append(f"{row['delta'] * 100:+.2f}" if math.isfinite(row["delta"]) else "")
    out.append(f"{row['p_holm']:.3g}" if math.isfinite(row["p_holm"]) else "")
    return out


def format_count(value: float | None) -> str:
    """A parameter count as 3,383,818, or — when unknown."""
    return f"{value:,.0f}" if value is not None and math.isfinite(value) else "—"


def to_markdown(tables: list[FactorTable]) -> str:
    trainable = shows_trainable(tables)
    heads = headings(trainable)
    parts = []
    for table in tables:
        lines = [f"### {table.factor}", "", "| " + " | ".join(heads) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(heads) - 1)) + "|"]
        lines += ["| " + " | ".join(formatted_row(r, trainable=trainable)) + " |" for r in table.rows]
        lines += ["", table.verdict + "."] + [f"Note: {n}." for n in table.notes]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def to_csv(tables: list[FactorTable]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    chosen = columns(shows_trainable(tables))
    header = ["factor", "value", "seeds", "best"]
    for column, *_ in chosen:
        header += [f"{column}_mean", f"{column}_ci95"]
    writer.writerow(header + ["delta_test_accuracy", "p", "p_holm"])
    for table in tables:
        for r in table.rows:
            line = [table.factor, r["value"], r["n"], r["best"]]
            for column, *_ in chosen:
                line += [r[column].mean, r[column].half_width]
            writer.writerow(line + [r["delta"], r["p"], r["p_holm"]])
    return out.getvalue()


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("★ ", r"$\star$ "), ("Δ", r"$\Delta$")):
        text = text.replace(a, b)
    return text


def to_latex(tables: list[FactorTable]) -> str:
    trainable = shows_trainable(tables)
    heads = headings(trainable)
    parts = []
    for table in tables:
        lines = [f"% {table.factor}: {table.verdict}", r"\begin{tabular}{l" + "r" * (len(heads) - 1) + "}",
                 r"\hline", " & ".join(_latex_escape(h) for h in heads) + r" \\", r"\hline"]
        lines += [" & ".join(_latex_escape(c) for c in formatted_row(r, trainable=trainable)) + r" \\"
                  for r in table.rows]
        lines += [r"\hline", r"\end{tabular}"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


# The text formats of the tables, by name (the command line's --format); each writer takes study_tables' tables.
TABLE_FORMATS: Registry[Callable[[list[FactorTable]], str]] = Registry("table format (--format)")
TABLE_FORMATS.register("markdown", to_markdown)
TABLE_FORMATS.register("csv", to_csv)
TABLE_FORMATS.register("latex", to_latex)


def render_tables(tables: list[FactorTable], fmt: str = "markdown") -> str:
    """The tables as text in a format of TABLE_FORMATS (an unknown name lists the known ones)."""
    if not isinstance(fmt, str):
        raise bad_value("fmt", "render_tables", f"one of {', '.join(TABLE_FORMATS.names())}", fmt)
    return TABLE_FORMATS.get(fmt)(tables)


def write_tables(study: str | Path, fmt: str, out: str | Path, alpha: float = 0.05) -> Path:
    """Write the study's tables in a format of TABLE_FORMATS to the file `out`, atomically; the format and the
    path are checked before the study is read."""
    from ..files import atomic_write
    from .plots import check_writable

    TABLE_FORMATS.get(fmt)
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"-o {out} is a folder; give a file name such as {out / 'table.tex'}")
    check_writable(out)
    text = render_tables(study_tables(study, alpha), fmt)
    try:
        atomic_write(out, text)
    except OSError as exc:  # name the file asked for, not the temporary one beside it
        raise ConfigError(f"-o {out}: cannot write it ({(exc.strerror or str(exc)).lower()}); choose another "
                          f"path") from exc
    return out
