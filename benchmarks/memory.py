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
    """Resident set size of this process over a run (MB): the peak during warm-up and the peak after it.

    Growth is the later peak minus the warm-up peak, so that memory which depends on a batch's shape
    (padding length, attention) and is reached during warm-up does not count, and memory that grows with
    the number of objects processed does.
    """

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.start = self.peak = self.warm_peak = self.process.memory_info().rss
        self.warmed_up = False

    def sample(self, *, warmed_up: bool = False) -> None:
        rss = self.process.memory_info().rss
        self.warmed_up = self.warmed_up or warmed_up
        if not self.warmed_up:
            self.warm_peak = max(self.warm_peak, rss)
        self.peak = max(self.peak, rss)

    def growth_mb(self) -> tuple[float, float]:
        """(peak growth after warm-up, peak growth from start) in MB."""
        if not self.warmed_up:
            raise RuntimeError("the run ended before warm-up; measure a longer run")
        return (self.peak - self.warm_peak) / MB, (self.peak - self.start) / MB


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
