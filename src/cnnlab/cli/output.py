"""What the commands print: the consoles, tables at their natural width, figures written and named."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)
for _c in (console, err_console):
    if not _c.is_terminal:  # piped or captured: wide enough that tables and epoch lines do not wrap
        _c.width = 120


def say(text: str) -> None:
    """A line as it is: no markup highlighting, never folded."""
    console.print(text, highlight=False, soft_wrap=True)


def table(title: str | None, headings, rows, left=(0,), no_wrap=()) -> Table:
    """A rich table; columns whose index is in `left` are left-aligned, the rest right-aligned."""
    out = Table(title=title)
    for i, heading in enumerate(headings):
        out.add_column(heading, justify="left" if i in left else "right", no_wrap=i in no_wrap)
    for row in rows:
        out.add_row(*[str(v) for v in row])
    return out


def print_whole(rich_table: Table) -> None:
    """Print a table at its natural width, so no cell is cut short (a narrower terminal wraps its lines)."""
    natural = console.measure(rich_table, options=console.options.update_width(10_000)).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(rich_table)
    finally:
        console.width = width


def save(fig, path: Path) -> None:
    """Write a figure atomically to the path figure_path chose, and say where it went."""
    from ..analysis.plots import write_figure

    write_figure(fig, path)
    say(f"wrote {path}")


def print_info(info) -> None:
    c, h, w = info.image_shape
    console.print(f"[bold]{info.name}[/]: {len(info.classes)} classes, images {c}×{h}×{w} uint8")
    for line in info.presence:
        console.print(f"  {line}")
    for note in info.notes:
        console.print(f"  note: {note}")
    rows = [[name, *[f"{s.counts[i]:,}" for s in info.splits]] for i, name in enumerate(info.classes)]
    console.print(table("images per class", ["class", *[s.name for s in info.splits]], rows))
    rarest, commonest = info.extremes()
    ref = info.reference.name
    console.print(f"imbalance ({ref}): {info.imbalance:.2f}× (commonest / rarest class)")
    console.print(f"  rarest: {', '.join(f'{n!r} {k:,}' for n, k in rarest)}")
    console.print(f"  commonest: {', '.join(f'{n!r} {k:,}' for n, k in commonest)}")
    for split in info.splits:
        mean = ", ".join(f"{m:.4f}" for m in split.mean)
        std = ", ".join(f"{s:.4f}" for s in split.std)
        console.print(f"{split.name}: pixel mean {mean}, std {std} (0–1 scale); "
                      f"{split.duplicates:,} duplicate images within the split")
    if info.train_test_overlap is not None:
        console.print(f"test images also in train: {info.train_test_overlap:,}")
    for mine, other, theirs, count, total in info.cross_overlaps:
        console.print(f"{info.name} {mine} ∩ {other} {theirs}: {count:,} of {total:,} images "
                      f"({100 * count / max(total, 1):.1f} %)")


def print_study_tables(tables) -> None:
    from ..analysis.study_table import formatted_row, headings, shows_trainable

    trainable = shows_trainable(tables)
    for factor_table in tables:
        rows = [formatted_row(row, sep="±", trainable=trainable) for row in factor_table.rows]
        heads = headings(trainable)
        # whole rows, never a value squeezed out or a number folded: wider than the terminal, it wraps there
        print_whole(table(f"{factor_table.factor} (mean ± 95 % CI over seeds; ★ best by validation accuracy)",
                          heads, rows, no_wrap=range(len(heads))))
        console.print(factor_table.verdict + ".", highlight=False)
        for note in factor_table.notes:
            console.print(f"note: {note}.", highlight=False)
