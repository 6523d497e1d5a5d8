"""The README figure: one simulated galaxy (image and DESI-like spectrum) and one variable star's light curve.

    python -m astrofm.sim.example --out docs/images/sim_example.png [--root DIR]

Without ``--root`` a ``tiny`` universe is simulated in a temporary folder.
Drawn with :mod:`astrofm.plotting`'s helpers from samples of the data layer.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from astrofm.plotting import plot_image, plot_lightcurve, plot_spectrum, save_figure
from astrofm.sim.pipeline import SimulatedUniverse, open_universe, simulate


def example_figure(universe: SimulatedUniverse) -> Any:
    """Three panels: a bright spiral (image, spectrum) and an RR Lyrae light curve folded on its period."""
    galaxies = universe.truth("galaxies")
    anomalies = universe.anomalies()
    normal = anomalies["anomaly_type"][anomalies["population"] == b"galaxies"] == b""
    candidates = np.flatnonzero(normal & galaxies["has_spectrum"] & (galaxies["morphology"] == b"Sp")
                                & (galaxies["z"] > 0.05) & (galaxies["z"] < 0.25))
    pick = candidates[np.argmax(galaxies["flux_r"][candidates])]
    image = universe.dataset("legacysurvey").get(galaxies["legacysurvey_object_id"][pick])
    spectrum = universe.dataset("desi").get(int(galaxies["desi_object_id"][pick]))
    stars = universe.truth("stars")
    rr = np.flatnonzero((stars["class"] == b"RRAB") & (stars["mean_vmag"] < 14))
    star = rr[0] if len(rr) else int(np.flatnonzero(stars["class_index"] >= 0)[0])
    curve = universe.dataset("asassn").get(int(stars["asassn_object_id"][star]))

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1, 2.3, 1.8]})
    plot_image(image["image"], axes[0], title=f"Legacy-Survey-like g,r,i,z  z = {galaxies['z'][pick]:.3f}")
    plot_spectrum(spectrum["spectrum"], axes[1], title="DESI-like spectrum of the same galaxy", smooth=7)
    plot_lightcurve(curve["lightcurve"], axes[2], period=float(stars["period"][star]),
                    title=f"ASAS-SN-like {stars['class'][star].decode()}  P = {stars['period'][star]:.3f} d")
    axes[2].set_ylabel("flux [mJy]", fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/sim_example.png"))
    parser.add_argument("--root", type=Path, help="a finished simulation (default: simulate tiny in a temp folder)")
    args = parser.parse_args(argv)
    if args.root is not None:
        save_figure(example_figure(open_universe(args.root)), args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        save_figure(example_figure(simulate(Path(tmp) / "sim", preset="tiny", progress=False)), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
