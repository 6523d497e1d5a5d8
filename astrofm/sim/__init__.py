"""The simulated universe: astrofm's built-in data, written as Multimodal Universe datasets.

One latent object makes every modality it has: galaxies get Legacy-Survey-like
g/r/i/z cutouts and (about 60% of them) DESI-like spectra; variable stars get
ASAS-SN-like light curves, Gaia-like metadata and LAMOST-like spectra. The
truth catalog holds every latent, a separate table the ~1% labelled anomalies,
and ``splits.json`` a train/val/test manifest. Switching to real MMU data is a
change of path::

    from astrofm.sim import simulate, load_truth, load_splits

    universe = simulate("sim", preset="tiny", seed=0)     # or: astrofm simulate --root sim
    images = universe.dataset("legacysurvey")            # an astrofm.data.MMUDataset
    galaxies = load_truth("sim", "galaxies")             # dict of column arrays
    train_ids = load_splits("sim")["populations"]["galaxies"]["train"]["labelled"]

Datasets (``SimulatedUniverse.datasets``): ``legacysurvey`` →
``legacysurvey/dr10_south_21``, ``desi`` → ``desi/dr1_main``, ``asassn`` →
``asassn/variables``, ``gaia`` → ``gaia/dr3``, ``lamost`` → ``lamost/dr8``.
"""

from astrofm.sim.config import PRESETS, SimConfig, make_config
from astrofm.sim.pipeline import SimulatedUniverse, open_universe, simulate
from astrofm.sim.splits import load_splits
from astrofm.sim.truth import load_anomalies, load_truth
from astrofm.sim.units import DATASETS

__all__ = [
    "DATASETS",
    "PRESETS",
    "SimConfig",
    "SimulatedUniverse",
    "load_anomalies",
    "load_splits",
    "load_truth",
    "make_config",
    "open_universe",
    "simulate",
]
