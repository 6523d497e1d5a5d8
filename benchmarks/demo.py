"""The demo benchmark: wall minutes of ``astrofm demo`` on the ``small`` preset with the shipped model.

Runs ``astrofm demo --root ROOT`` (default ``runs/demo``; removed first unless ``--keep``, so every step
runs) as a subprocess, as a user would, and records ``demo.minutes`` (target <= 10 on 2 cores). An
existing simulated universe may be reused with ``--universe`` (the simulation step then only checks it;
the notes say so).

    python -m benchmarks.demo                                   # simulates into runs/demo/universe
    python -m benchmarks.demo --universe data/sim/small         # reuses the science benchmarks' universe
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.results import record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("runs/demo"))
    parser.add_argument("--model", default="astrofm-sim-small")
    parser.add_argument("--universe", type=Path, help="an existing small universe to reuse")
    parser.add_argument("--keep", action="store_true", help="do not delete ROOT first (a resumed run)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.root.exists() and not args.keep:
        shutil.rmtree(args.root)
    reused = args.universe is not None and (args.universe / "simulation.json").exists()
    command = [sys.executable, "-m", "astrofm", "demo", "--root", str(args.root), "--model", args.model,
               "--no-progress"] + (["--universe", str(args.universe)] if args.universe else [])
    start = time.perf_counter()
    subprocess.run(command, check=True)
    minutes = (time.perf_counter() - start) / 60
    metrics = json.loads((args.root / "metrics.json").read_text())
    print(f"astrofm demo: {minutes:.2f} min wall; steps {metrics['timings']}")
    if args.no_record:
        return
    load = os.getloadavg()
    shown = "astrofm demo --root " + str(args.root) + (f" --model {args.model}" if args.model != "astrofm-sim-small"
                                                      else "") + (f" --universe {args.universe}" if reused else "")
    record("demo.minutes", minutes, target="<= 10", unit="min", baseline="none (absolute target)",
           command=f"python -m benchmarks.demo{' --universe ' + str(args.universe) if args.universe else ''}",
           notes=f"`{shown}`, small preset, shipped model, 2 CPU cores, wall clock of the whole command; "
                 + ("simulated universe reused (the simulate step only checked it); " if reused else
                    "universe simulated in the run; ")
                 + f"step seconds {metrics['timings']}; load average at the end {load[0]:.1f}",
           steps=metrics["timings"], universe_reused=reused)


if __name__ == "__main__":
    main()
