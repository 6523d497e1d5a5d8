"""``astrofm demo``: the whole mission on the simulated universe, in one command, with a report.

Steps (:mod:`astrofm.demo.steps`), run in order and resumed by :mod:`astrofm.demo.pipeline`:
simulate the universe, load (or train) the model, embed every object, probe redshift, stellar
mass and star class against baselines, search across modalities, rank anomalies with a round of
active learning, draw UMAP maps, and complete a spectrum with a tiny autoregressive model.
Outputs under the root: ``report.html`` (self-contained), the PNGs and ``metrics.json``::

    from astrofm.demo import DemoOptions, run_demo

    metrics = run_demo(DemoOptions(root=Path("runs/demo"), preset="tiny", train=True))
"""

from astrofm.demo.layout import DemoOptions
from astrofm.demo.pipeline import STEPS, run_demo

__all__ = ["STEPS", "DemoOptions", "run_demo"]
