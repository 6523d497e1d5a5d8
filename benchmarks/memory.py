"""Memory measurements for benchmarks: RSS tracking, and running a measurement in a fresh process.

A fresh interpreter keeps earlier work of the benchmark (page cache aside) out of the figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

MB = 2**20


class RSSTracker:
    """Resident set size of this process: at start, after warm-up, and the peak of ``sample()`` calls (MB)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.warm: int | None = None

    def sample(self, *, warmed_up: bool = False) -> None:
        rss = self.process.memory_info().rss
        if warmed_up and self.warm is None:
            self.warm = rss
        self.peak = max(self.peak, rss)

    def growth_mb(self) -> tuple[float, float]:
        """(peak growth after warm-up, peak growth from start) in MB."""
        if self.warm is None:
            raise RuntimeError("the run ended before warm-up; measure a longer run")
        return (self.peak - self.warm) / MB, (self.peak - self.start) / MB


def in_fresh_process(function: str, *args: Any) -> Any:
    """Call ``module:function(*args)`` (JSON-able arguments and result) in a new Python process."""
    module, name = function.split(":")
    code = (f"import json, sys; from {module} import {name}; "
            f"print(json.dumps({name}(*json.loads(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))], capture_output=True, text=True,
                         check=False, cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(f"{function} failed in a fresh process:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
