"""Memory measurements for benchmarks: RSS tracking, and running a measurement in a fresh process.

A fresh interpreter keeps earlier work of the benchmark (page cache aside) out of the figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psutil

MB = 2**20


def file_backed_rss(pid: int) -> int:
    """Bytes of a process's RSS that are file pages it maps (``RssFile``; 0 where /proc does not say)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RSSTracker:
    """Resident set size of this process over a run (MB): the peak during warm-up and the peak after it.

    Growth is the later peak minus the warm-up peak, so that memory which depends on a batch's shape
    (padding length, attention) and is reached during warm-up does not count, and memory that grows with
    the number of objects processed does. The same is tracked for the memory the process owns (RSS less the
    file pages it maps: astrofm's kept maps of shard files count in RSS but are page cache) and for the
    file pages themselves.
    """

    def __init__(self) -> None:
        self.process = psutil.Process()
        rss, mapped = self._now()
        self.start = self.peak = self.warm_peak = rss
        self.owned_start = self.owned_peak = self.owned_warm_peak = rss - mapped
        self.mapped_start = self.mapped_peak = mapped
        self.warmed_up = False
        self.owned_after_warmup: list[int] = []

    def _now(self) -> tuple[int, int]:
        return self.process.memory_info().rss, file_backed_rss(self.process.pid)

    def sample(self, *, warmed_up: bool = False) -> None:
        rss, mapped = self._now()
        self.warmed_up = self.warmed_up or warmed_up
        if not self.warmed_up:
            self.warm_peak = max(self.warm_peak, rss)
            self.owned_warm_peak = max(self.owned_warm_peak, rss - mapped)
        else:
            self.owned_after_warmup.append(rss - mapped)
        self.peak = max(self.peak, rss)
        self.owned_peak = max(self.owned_peak, rss - mapped)
        self.mapped_peak = max(self.mapped_peak, mapped)

    def growth_mb(self) -> tuple[float, float]:
        """(peak RSS growth after warm-up, peak RSS growth from start) in MB."""
        if not self.warmed_up:
            raise RuntimeError("the run ended before warm-up; measure a longer run")
        return (self.peak - self.warm_peak) / MB, (self.peak - self.start) / MB

    def owned_growth_mb(self) -> float:
        """Peak growth after warm-up in MB of the memory the process owns (RSS less mapped file pages)."""
        return (self.owned_peak - self.owned_warm_peak) / MB

    def owned_trend_mb(self) -> float:
        """Median owned memory in the last quarter of the samples after warm-up less the median in the first
        quarter, in MB: what grows with the work done, without the peaks of single large batches that the
        peak growth also counts (a leak shows here; a long batch late in the run does not)."""
        quarter = len(self.owned_after_warmup) // 4
        if quarter < 1:
            raise RuntimeError("fewer than 4 samples after warm-up; measure a longer run")
        first, last = self.owned_after_warmup[:quarter], self.owned_after_warmup[-quarter:]
        return float(np.median(last) - np.median(first)) / MB

    def mapped_file_mb(self) -> float:
        """Peak growth from start of file-backed RSS in MB (pages of files mapped during the run)."""
        return (self.mapped_peak - self.mapped_start) / MB


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
