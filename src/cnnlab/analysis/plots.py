"""Report figures with matplotlib: learning curves, confusion heatmap, per-class recall, misclassified
images, a study factor's bars with confidence intervals, the trainable and frozen shares of transfer
models' parameters and an accuracy / cost Pareto scatter.

Every function here returns a `matplotlib.figure.Figure` built without pyplot (no window, no global
figure registry to leak), styled for print: colour-blind-safe colours, markers and hatches that survive a
grey-scale printer. `save_figure` writes PNG (150 dpi) and SVG with real text, for these figures and for
the data module's (`cnnlab.data.class_histogram` and `sample_grid`, built the same way). matplotlib is
imported only when a figure is made, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .metrics import row_normalised

__all__ = [
    "confusion_heatmap", "learning_curves", "misclassified_gallery", "pareto_front", "pareto_scatter",
    "per_class_accuracy", "save_figure", "study_bars",
]

# Okabe & Ito's palette: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NEUTRAL = "#9DB7CF"
HIGHLIGHT = "#D55E00"

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "0.85",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "svg.fonttype": "none",
}


def _styled(function):
    """Build the figure under the print style without touching the caller's rcParams."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_STYLE):
            return function(*args, **kwargs)

    return wrapper


def _t(text) -> str:
    """Text drawn as written: a '$' in a class name, run or value is not mathtext."""
    from ..data.explore import literal

    return literal(text)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _note(ax, text: str) -> None:
    """An empty panel that says why it is empty (an empty axis in a report reads as a bug)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def figure_formats() -> dict[str, str]:
    """The file types matplotlib can write here: {'png': 'Portable Network Graphics', ...}."""
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


def _check_format(fmt: str, path: Path) -> str:
    fmt = fmt.lower().lstrip(".")
    known = figure_formats()
    if fmt not in known:
        raise ConfigError(f"{path}: matplotlib cannot write .{fmt} files; end the name in one of "
                          f"{', '.join('.' + k for k in sorted(known))}")
    return fmt


def figure_path(out: str | Path, default_name: str) -> Path:
    """Where a figure asked for as `out` (-o) goes: `out/default_name` when `out` is a folder, `out.png`
    when it has no suffix. Checked before anything is drawn: a format matplotlib writes, and a place
    that can hold the file."""
    path = Path(out)
    if path.is_dir():
        path = path / default_name
    elif not path.suffix:
        path = path.with_name(f"{path.name}.png")
    _check_format(path.suffix, path)
    check_writable(path)
    return path


def check_writable(path: Path) -> None:
    """The nearest existing folder above `path` is a folder we may write into (checked before the work
    that makes the file, so a bad path fails at once)."""
    import os

    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{path}: {ancestor} is a file, not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: the folder {ancestor} is not writable; choose another path")


def write_figure(fig, path: str | Path, fmt: str | None = None, dpi: int = 150) -> Path:
    """Write `fig` to `path` atomically (drawn in memory, then a temporary file renamed into place), so
    a failure leaves no half-written file; the format is the suffix unless given."""
    import io

    import matplotlib

    from ..runfolder import atomic_write

    path = Path(path)
    fmt = _check_format(fmt or path.suffix or "png", path)
    buffer = io.BytesIO()
    # A fixed hash salt and no date keep SVGs byte-identical between runs, so reports diff cleanly.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cnnlab"}):
        metadata = {"Date": None} if fmt in ("svg", "pdf") else None
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    try:
        atomic_write(path, buffer.getvalue())
    except OSError as exc:  # name the file asked for, not the temporary one beside it
        raise ConfigError(f"cannot write the figure {path}: {(exc.strerror or str(exc)).lower()}; choose another "
                          f"path") from exc
    return path


def save_figure(fig, path_without_suffix: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write `fig` once per format (PNG at 150 dpi, SVG with searchable text), each atomically;
    returns the paths."""
    base = Path(path_without_suffix)
    formats = [_check_format(fmt, base) for fmt in formats]
    # with_suffix would eat part of a name like "lenet5-lr0.01"
    return [write_figure(fig, base.with_name(f"{base.name}.{fmt}"), fmt) for fmt in formats]


# ---- learning curves ----------------------------------------------------------------------------
@_styled
def learning_curves(runs: Mapping[str, Sequence[Mapping]], title: str | None = None):
    """Loss and accuracy per epoch; one colour per run, training solid and validation dashed."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig = _figure(9.5, 3.6)
    loss_ax, acc_ax = fig.subplots(1, 2)
    handles = []
    for i, (label, rows) in enumerate(runs.items()):
        if not rows:
            continue
        rows = sorted(rows, key=lambda r: r["epoch"])
        colour, marker = PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]
        # markers mark each epoch when there are few (a two-epoch run is otherwise one bare segment)
        style = {"color": colour, "marker": marker if len(rows) <= 25 else None, "markersize": 4, "linewidth": 1.4}
        epochs = [r["epoch"] for r in rows]
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
            for split, line in (("train", "-"), ("val", "--")):
                values = [float(r.get(f"{split}_{metric}", math.nan)) for r in rows]
                # hollow markers for validation tell the two apart where the lines cross
                ax.plot(epochs, values, linestyle=line, markerfacecolor=colour if split == "train" else "white",
                        **style)
        handles.append(Line2D([], [], label=_t(label), **style))
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    if handles:
        handles += [Line2D([], [], color="0.3", linestyle="-", label="training"),
                    Line2D([], [], color="0.3", linestyle="--", marker="o", markerfacecolor="white", markersize=4,
                           label="validation")]
        fig.legend(handles=handles, loc="outside right upper", frameon=False)
    else:
        for ax in (loss_ax, acc_ax):
            _note(ax, "no epochs recorded yet")
    fig.suptitle(_t(title or "Learning curves"))
    return fig


# ---- confusion matrix ---------------------------------------------------------------------------
def _kind(name: str) -> str:
    if name.isdigit():
        return "digit"
    if name.isupper():
        return "upper"
    if name.islower():
        return "lower"
    return "other"


@_styled
def confusion_heatmap(matrix, classes: Sequence[str], normalize: bool = True, title: str | None = None):
    """Rows: true class, columns: predicted; colours are each row's shares (normalize) or counts."""
    from matplotlib.ticker import PercentFormatter

    counts = np.asarray(matrix, dtype=float)
    names = [str(c) for c in classes]
    n = len(names)
    shown_names = [_t(c) for c in names]
    if counts.ndim != 2 or counts.shape != (n, n):
        raise ValueError(f"confusion matrix must be {n}×{n} for {n} classes, got shape {counts.shape}")
    shown = row_normalised(counts) if normalize else counts
    # about 12 pt per cell: a 6 pt label fits every one of EMNIST's 62 classes without skipping any
    side = max(4.5, 0.17 * n + 2.2)
    fig = _figure(side + 0.9, side)
    ax = fig.subplots()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(float(shown.max()), 1.0),
                      interpolation="nearest", aspect="equal")
    ax.grid(False)
    fontsize = 9 if n <= 20 else 7 if n <= 40 else 6
    long_names = max((len(s) for s in names), default=0) > 2
    ax.set_xticks(np.arange(n), shown_names, fontsize=fontsize, rotation=45 if long_names else 0,
                  ha="right" if long_names else "center", rotation_mode="anchor")
    ax.set_yticks(np.arange(n), shown_names, fontsize=fontsize)
    ax.tick_params(length=2, pad=1.5)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    kinds = [_kind(s) for s in names]
    if len(set(kinds)) > 1:
        for i in range(1, n):
            if kinds[i] != kinds[i - 1]:
                ax.axhline(i - 0.5, color="0.2", linewidth=0.6)
                ax.axvline(i - 0.5, color="0.2", linewidth=0.6)
    if n <= 12:
        # small matrices get their numbers written in: exact values read better in print than shades
        for (r, c), value in np.ndenumerate(shown):
            if counts[r, c]:
                text = f"{value * 100:.0f}" if normalize else f"{int(counts[r, c])}"
                dark = value > (0.55 if normalize else 0.55 * shown.max())
                ax.text(c, r, text, ha="center", va="center", fontsize=7, color="white" if dark else "0.15")
    bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.02)
    if normalize:
        bar.ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        bar.set_label("share of the true class's images")
    else:
        bar.set_label("images")
    ax.set_title(_t(title or f"Confusion matrix ({'rows normalised' if normalize else 'counts'})"))
    return fig


# ---- per-class recall ---------------------------------------------------------------------------
@_styled
def per_class_accuracy(per_class_frame, title: str | None = None):
    """Recall per class (its accuracy), worst first; horizontal bars when there are many classes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    names = np.asarray([str(c) for c in per_class_frame["class"]], dtype=object)
    recall = np.asarray(per_class_frame["recall"], dtype=float)
    # a class without test images has recall 0 by convention, which would pose as the worst class
    support = np.asarray(per_class_frame["support"]) if "support" in per_class_frame else np.ones(len(names))
    keep = support > 0
    dropped = int((~keep).sum())
    names, recall = names[keep], recall[keep]
    order = np.argsort(recall, kind="stable")
    names, recall = names[order], recall[order]
    n = len(names)
    horizontal = n > 12
    if horizontal:
        fig = _figure(6.0, max(3.0, 0.16 * n + 1.3))
    else:
        fig = _figure(max(4.5, 0.45 * n + 1.5), 3.6)
    ax = fig.subplots()
    heading = title or "Recall per class, worst first"
    if dropped:
        heading += f"\n({dropped} class{'es' if dropped > 1 else ''} without images left out)"
    ax.set_title(_t(heading))
    value_label, class_label = "recall (accuracy on the class's images)", "class"
    if n == 0:
        _note(ax, "no classes with images")
        ax.set_xlabel(value_label if horizontal else class_label)
        ax.set_ylabel(class_label if horizontal else value_label)
        return fig
    mean = float(recall.mean())
    colours = [HIGHLIGHT if r < mean else NEUTRAL for r in recall]
    position = np.arange(n)
    fontsize = 8 if n <= 30 else 6
    if horizontal:
        ax.barh(position, recall, color=colours, edgecolor="0.3", linewidth=0.4, height=0.75)
        ax.set_yticks(position, [_t(c) for c in names], fontsize=fontsize)
        ax.set_ylim(n - 0.5, -0.5)  # the worst class on top, where the eye starts
        ax.set_xlim(0, 1.12)
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.axvline(mean, color="0.2", linestyle="--", linewidth=1)
        for p, r in zip(position, recall):
            ax.text(r + 0.01, p, f"{r * 100:.1f}", va="center", fontsize=fontsize - 1)
        ax.set_xlabel(value_label)
        ax.set_ylabel(class_label)
        ax.grid(axis="y", visible=False)
    else:
        ax.bar(position, recall, color=colours, edgecolor="0.3", linewidth=0.4, width=0.75)
        ax.set_xticks(position, [_t(c) for c in names], fontsize=fontsize,
                      rotation=45 if max(map(len, names)) > 3 else 0,
                      ha="right" if max(map(len, names)) > 3 else "center", rotation_mode="anchor")
        ax.set_ylim(0, 1.12)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.axhline(mean, color="0.2", linestyle="--", linewidth=1)
        for p, r in zip(position, recall):
            ax.text(p, r + 0.01, f"{r * 100:.1f}", ha="center", fontsize=fontsize - 1)
        ax.set_xlabel(class_label)
        ax.set_ylabel(value_label)
        ax.grid(axis="x", visible=False)
    # below the axes: inside, it would cover the bars' ends whatever corner it took
    fig.legend(handles=[Line2D([], [], color="0.2", linestyle="--", label=f"mean recall {mean * 100:.1f} %"),
                        Patch(facecolor=HIGHLIGHT, edgecolor="0.3", label="below the mean")],
               loc="outside lower center", ncols=2, frameon=False)
    return fig


# ---- misclassified images -----------------------------------------------------------------------
@_styled
def misclassified_gallery(images, labels, predicted, classes: Sequence[str], limit: int = 32, columns: int = 8,
                          title: str | None = None):
    """Tiles of the first `limit` misclassified images (N×C×H×W uint8), titled 'true → predicted'."""
    from ..data.explore import upright_grid

    images, labels, predicted = np.asarray(images), np.asarray(labels), np.asarray(predicted)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be N×C×H×W with C = 1 or 3, got shape {images.shape}")
    if not len(images) == len(labels) == len(predicted):
        raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(predicted)} predictions must match")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    names = [str(c) for c in classes]
    wrong = np.flatnonzero(labels != predicted)
    shown = wrong[:max(limit, 0)]
    heading = title or "Misclassified images (true → predicted)"
    if len(shown) == 0:
        fig = _figure(4.5, 1.6)
        ax = fig.subplots()
        ax.axis("off")
        message = ("no misclassified images" if len(wrong) == 0 else "no images requested (limit 0)")
        ax.text(0.5, 0.5, f"{message}\n({len(labels):,} images)", ha="center", va="center",
                transform=ax.transAxes, fontsize=10)
        fig.suptitle(_t(heading))
        return fig
    cols = min(columns, len(shown))
    rows = -(-len(shown) // cols)
    fig = _figure(1.15 * cols, 1.3 * rows + 0.45)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    pictures = upright_grid(images[shown])
    # ink dark on light paper: how a printed page shows handwriting
    cmap = "gray_r" if images.shape[1] == 1 else None
    for ax in axes:
        ax.axis("off")
    for ax, picture, index in zip(axes, pictures, shown):
        ax.imshow(picture, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(_t(f"{names[labels[index]]} → {names[predicted[index]]}"), fontsize=8, pad=2)
    fig.suptitle(_t(f"{heading}: {len(shown)} of {len(wrong):,} errors in {len(labels):,} images"))
    return fig


# ---- a study factor -----------------------------------------------------------------------------
@_styled
def study_bars(factor_table, y_from_zero: bool = True, title: str | None = None):
    """Mean test accuracy per value of one factor with its 95 % CI over seeds; the best value (by
    validation accuracy, as the table chose it) highlighted."""
    from matplotlib.patches import Patch

    rows = list(factor_table.rows)
    values = [str(r["value"]) for r in rows]
    means = np.array([r["test_accuracy"].mean for r in rows], dtype=float) * 100
    halves = np.array([r["test_accuracy"].half_width for r in rows], dtype=float) * 100
    seeds = [r["test_accuracy"].n for r in rows]
    best = [bool(r.get("best")) for r in rows]
    n = len(rows)
    fig = _figure(max(4.0, 0.9 * n + 1.6), 3.8)
    ax = fig.subplots()
    ax.set_title(_t(title or f"{factor_table.factor}: test accuracy, mean ± 95 % CI over seeds"))
    ax.set_xlabel(_t(factor_table.factor))
    ax.set_ylabel("test accuracy (%)")
    if n == 0:
        _note(ax, "no values")
        return fig
    x = np.arange(n)
    has_mean, has_ci = np.isfinite(means), np.isfinite(halves)
    ax.bar(x, np.where(has_mean, means, 0), width=0.65, color=[HIGHLIGHT if b else NEUTRAL for b in best],
           edgecolor="0.2", linewidth=0.6, hatch=[("//" if b else None) for b in best])
    if has_ci.any():
        ax.errorbar(x[has_ci], means[has_ci], yerr=halves[has_ci], fmt="none", ecolor="0.1", elinewidth=1.1,
                    capsize=4)
    tops = np.where(has_ci, means + np.where(has_ci, halves, 0), means)
    finite_tops = tops[np.isfinite(tops)]
    high = float(finite_tops.max()) if len(finite_tops) else 100.0
    if y_from_zero or not len(finite_tops):
        low = 0.0
    else:
        lows = np.where(has_ci, means - np.where(has_ci, halves, 0), means)
        low = float(np.nanmin(lows))
        low = max(0.0, low - 0.15 * max(high - low, 0.5))
    span = max(high - low, 1e-9)
    ax.set_ylim(low, high + 0.14 * span)
    for i in range(n):
        if not has_mean[i]:
            text, y = "no results", low + 0.02 * span
        else:
            text = f"{means[i]:.2f}" + (f"\n± {halves[i]:.2f}" if has_ci[i] else f"\n({seeds[i]} seed)")
            y = tops[i] + 0.015 * span
        ax.text(x[i], y, text, ha="center", va="bottom", fontsize=7, linespacing=1.0)
    # the same star as the study's tables, so the mark survives a grey-scale print without the legend
    ticks = [("★ " if b else "") + v for v, b in zip(values, best)]
    rotate = n > 6 or max(map(len, ticks)) > 10
    ax.set_xticks(x, [_t(t) for t in ticks], rotation=30 if rotate else 0, ha="right" if rotate else "center",
                  rotation_mode="anchor")
    ax.grid(axis="x", visible=False)
    if any(best):
        fig.legend(handles=[Patch(facecolor=HIGHLIGHT, edgecolor="0.2", hatch="//",
                                  label="★ best by validation accuracy")], loc="outside lower center", frameon=False)
    return fig


# ---- transfer: what trains ----------------------------------------------------------------------
@_styled
def trainable_bars(counts: Mapping[str, tuple[int, int]], title: str | None = None):
    """Per model, its parameters as one bar of 100 %: the trainable share and the frozen share, with
    both counts under the model's name. `counts` maps a label to (trainable, frozen)."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    labels = list(counts)
    fig = _figure(7.0, 0.55 * max(len(labels), 1) + 1.6)
    ax = fig.subplots()
    ax.set_title(_t(title or "Parameters: trainable and frozen"))
    if not labels:
        _note(ax, "no transfer runs")
        return fig
    trainable = np.array([float(counts[k][0]) for k in labels])
    frozen = np.array([float(counts[k][1]) for k in labels])
    total = np.maximum(trainable + frozen, 1.0)
    y = np.arange(len(labels))[::-1]  # the first label on top, as in the table
    # shares, not counts: a head of 10^4 parameters beside a backbone of 10^6 would be an invisible sliver
    ax.barh(y, trainable / total * 100, height=0.6, color=PALETTE[0], edgecolor="0.2", linewidth=0.6)
    ax.barh(y, frozen / total * 100, left=trainable / total * 100, height=0.6, color=NEUTRAL, edgecolor="0.2",
            linewidth=0.6, hatch="..")
    ticks = [f"{label}\n{t:,.0f} trainable, {f:,.0f} frozen" for label, t, f in zip(labels, trainable, frozen)]
    ax.set_yticks(y, [_t(t) for t in ticks])
    ax.set_xlim(0, 100)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=100))
    ax.set_xlabel("share of the model's parameters")
    ax.grid(axis="y", visible=False)
    fig.legend(handles=[Patch(facecolor=PALETTE[0], edgecolor="0.2", label="trainable"),
                        Patch(facecolor=NEUTRAL, edgecolor="0.2", hatch="..", label="frozen")],
               loc="outside lower center", ncols=2, frameon=False)
    return fig


# ---- Pareto front -------------------------------------------------------------------------------
def pareto_front(points: Sequence[Mapping], x: str, y: str, lower_x_is_better: bool = True) -> list[int]:
    """Indices of the points no other point dominates (at least as good on x and y, strictly better
    on one), ordered from the best x to the worst. Higher y is better. Exact duplicates do not
    dominate each other, so both stay; points with a missing or non-finite x or y are left out."""
    valid = [i for i, p in enumerate(points) if _finite(p.get(x)) and _finite(p.get(y))]
    # flip x so that "higher is better" holds on both axes below
    sign = -1.0 if lower_x_is_better else 1.0
    coords = {i: (sign * float(points[i][x]), float(points[i][y])) for i in valid}

    def dominated(i: int) -> bool:
        xi, yi = coords[i]
        return any(xj >= xi and yj >= yi and (xj > xi or yj > yi) for j, (xj, yj) in coords.items() if j != i)

    front = [i for i in valid if not dominated(i)]
    # along the front y only falls as x gets better, so this is also worst-to-best accuracy
    return sorted(front, key=lambda i: (-coords[i][0], i))


@_styled
def pareto_scatter(points: Sequence[Mapping], x: str, y: str, label_key: str = "label", x_label: str | None = None,
                   y_label: str | None = None, lower_x_is_better: bool = True, title: str | None = None):
    """Accuracy (y) against a cost such as latency or size (x), each point labelled, the Pareto front
    drawn as the step of the best y reachable at each x and its points emphasised."""
    from matplotlib.lines import Line2D

    x_label = x_label or x
    y_label = y_label or y
    fig = _figure(6.4, 4.4)
    ax = fig.subplots()
    ax.set_xlabel(_t(f"{x_label} ({'lower' if lower_x_is_better else 'higher'} is better)"))
    ax.set_ylabel(_t(f"{y_label} (higher is better)"))
    ax.set_title(_t(title or f"{y_label} against {x_label}"))
    valid = [i for i, p in enumerate(points) if _finite(p.get(x)) and _finite(p.get(y))]
    if not valid:
        _note(ax, "no points with both values")
        return fig
    front = pareto_front(points, x, y, lower_x_is_better)
    on_front = set(front)
    xs = np.array([float(points[i][x]) for i in valid])
    ys = np.array([float(points[i][y]) for i in valid])
    # costs like parameters or latency often span orders of magnitude; a linear axis would crush the small ones
    if xs.min() > 0 and xs.max() / xs.min() > 100:
        ax.set_xscale("log")
    others = [k for k, i in enumerate(valid) if i not in on_front]
    ax.scatter(xs[others], ys[others], s=30, color=NEUTRAL, edgecolor="0.3", linewidth=0.6, zorder=3)
    fx = np.array([float(points[i][x]) for i in front])
    fy = np.array([float(points[i][y]) for i in front])
    order = np.argsort(fx, kind="stable")
    fx, fy = fx[order], fy[order]
    # with a lower-is-better cost a point's accuracy holds from its x onwards ("post"), otherwise up to it
    ax.step(fx, fy, where="post" if lower_x_is_better else "pre", color=HIGHLIGHT, linewidth=1.4, zorder=2)
    ax.scatter(fx, fy, s=60, marker="D", color=HIGHLIGHT, edgecolor="black", linewidth=0.8, zorder=4)
    for i in valid:
        point = points[i]
        label = str(point.get(label_key, i))
        ax.annotate(_t(label), (float(point[x]), float(point[y])), xytext=(5, 4), textcoords="offset points",
                    fontsize=7, fontweight="bold" if i in on_front else "normal")
    skipped = len(points) - len(valid)
    handles = [Line2D([], [], color=HIGHLIGHT, marker="D", markeredgecolor="black", label="Pareto front")]
    if others:
        handles.append(Line2D([], [], linestyle="none", marker="o", color=NEUTRAL, markeredgecolor="0.3",
                              label="dominated"))
    if skipped:
        handles.append(Line2D([], [], linestyle="none", label=_t(f"{skipped} point(s) without {x} or {y} left out")))
    ax.legend(handles=handles, loc="best", framealpha=0.9)
    ax.margins(x=0.12, y=0.1)  # room for the labels right of the points
    return fig
