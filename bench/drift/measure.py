"""Timing and memory, the same way in every tool's process (standard library only)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM), so the next peak is the evaluation's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    return _status_kb("VmHWM") / 1024


def _status_kb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return float("nan")


def run_windows(
    tool: str,
    files: list[str],
    load: Callable[[str], Any],
    evaluate: Callable[[Any], tuple[dict[str, bool], bool]],
) -> None:
    """Evaluate each window file; only `evaluate` is timed. Prints one JSON object."""
    windows = [(name, load(name)) for name in files]
    evaluate(windows[0][1])  # warm-up: imports and caches are not the steady state
    before = rss_mb()
    reset_peak()
    results = []
    for name, data in windows:
        start = time.perf_counter()
        flags, dataset = evaluate(data)
        seconds = time.perf_counter() - start
        results.append({"file": name, "seconds": seconds, "flags": flags, "dataset": dataset})
    json.dump(
        {
            "tool": tool,
            "rss_before_mb": before,
            "peak_mb": peak_mb(),
            "windows": results,
        },
        sys.stdout,
    )
