"""Small formatters of numbers for people, shared by the progress lines and the study reports."""

from __future__ import annotations

import math


def describe_seconds(seconds: float) -> str:
    """A duration at the precision a person reads it: '42 s', '12 min', '3.5 h', '2.1 days'."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
