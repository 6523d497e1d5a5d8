"""How much redshift the simulated spectra hold: the bound on S2 that no spectrum encoder can pass.

S2 asks a spectrum embedding for kNN redshift R² >= 0.99 on the test split's labelled galaxies. Any
estimate made from the spectrum alone is a function of it, so its squared error is at least that of the
posterior mean E[z | spectrum]. This computes that posterior mean from the χ² profile of a template fit
over 0 <= z <= 1.2 (the simulator's own continuum and line templates; prior: the train split's redshift
histogram) for the test split's normal galaxies with a DESI-like spectrum, and records its R² (and the
maximum-likelihood template fit's, for reference) as ``science.s2_spectrum_information_limit_r2``.
Run: ``python -m benchmarks.science.spectrum_limit``.
"""

from __future__ import annotations

import argparse
import logging
import time

from astrofm.sim.validation import spectrum_redshift_limit
from benchmarks.results import record
from benchmarks.science import common as C

log = logging.getLogger("benchmarks.science.spectrum_limit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    C.use_root(None, "small")
    start = time.perf_counter()
    limit = spectrum_redshift_limit(C.DATA_ROOT, split=args.split)
    wall = time.perf_counter() - start
    log.info("spectrum-only redshift R² on %d %s galaxies: %s", limit["n"], args.split, limit)
    record("science.s2_spectrum_information_limit_r2", limit["posterior_mean_r2"], target="context for S2 (>= 0.99)",
           unit="R²", baseline="none: an upper bound for any estimate from the spectrum alone",
           command=f"python -m benchmarks.science.spectrum_limit --split {args.split}",
           notes=f"posterior mean E[z | spectrum] from the template-fit χ² profile (simulator's templates, train-split "
                 f"redshift prior) on the {limit['n']} normal {args.split} galaxies with a DESI-like spectrum; "
                 f"maximum-likelihood template fit R² {limit['template_fit_r2']:.4f}; on the "
                 f"{limit['fraction_above_cut']:.0%} with median S/N per pixel >= 0.5: posterior mean "
                 f"{limit['posterior_mean_r2_above_cut']:.4f}, template fit {limit['template_fit_r2_above_cut']:.4f}",
           wall_s=round(wall, 1), **{k: round(v, 5) if isinstance(v, float) else v for k, v in limit.items()})


if __name__ == "__main__":
    main()
