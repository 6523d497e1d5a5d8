"""How much redshift the simulated data hold: the bounds on S1 (images) and S2 (spectra).

Any redshift estimate made from one modality is a function of it, so its squared error is at least that of
the posterior mean E[z | data]; no embedding's kNN regression can pass that.

Both are measured on S1's and S2's sample, the normal galaxies with a secure DESI-like redshift (``ZWARN`` == 0),
and over every normal galaxy beside it.

- ``--modality spectrum`` (S2, >= 0.99): the posterior mean from the χ² profile of a template fit over
  0 <= z <= 1.2 (the simulator's own continuum and line templates; prior: the train split's redshift
  histogram) -> ``science.s2_spectrum_information_limit_r2``.
- ``--modality image`` (S1, >= 0.90): gradient-boosted trees trained on the train split's catalog g, r, i, z
  fluxes (the simulator's optimal photometry of the cutouts, with a matched filter's noise) plus the true,
  noiseless galaxy shapes -> ``science.s1_image_information_limit_r2`` (with S1's
  kNN protocol applied to the catalog magnitude and colours beside it). A fitted
  regression approaches the posterior mean from below, and the noiseless shapes are more than a cutout
  shows: an estimate of the bound, not a guarantee (see :func:`astrofm.sim.validation.photometric_redshift_limit`).

Run: ``python -m benchmarks.science.information_limit --modality image`` (or ``spectrum``).
"""

from __future__ import annotations

import argparse
import logging
import time

from astrofm.sim.validation import photometric_redshift_limit, spectrum_redshift_limit
from benchmarks.results import record
from benchmarks.science import common as C

log = logging.getLogger("benchmarks.science.information_limit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", required=True, choices=["image", "spectrum"])
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    C.use_root(None, "small")
    command = f"python -m benchmarks.science.information_limit --modality {args.modality} --split {args.split}"
    start = time.perf_counter()
    if args.modality == "spectrum":
        limit = spectrum_redshift_limit(C.DATA_ROOT, split=args.split)
        value = limit["posterior_mean_r2"]
        notes = (f"posterior mean E[z | spectrum] from the template-fit χ² profile (simulator's templates, "
                 f"train-split redshift prior) on the {limit['n']} normal {args.split} galaxies with a secure "
                 f"DESI-like redshift (ZWARN == 0, {limit['fraction_secure']:.0%} of those with a spectrum); "
                 f"maximum-likelihood template fit R² {limit['template_fit_r2']:.4f}; over all {limit['n_all']} "
                 f"with a spectrum: posterior mean {limit['posterior_mean_r2_all']:.4f}, template fit "
                 f"{limit['template_fit_r2_all']:.4f}")
    else:
        limit = photometric_redshift_limit(C.DATA_ROOT, split=args.split)
        value = limit["catalog_flux_and_true_shapes_r2"]
        notes = (f"gradient-boosted trees trained on {limit['n_train']} normal train galaxies with a secure "
                 f"DESI-like redshift (ZWARN == 0), R² on the {limit['n']} such {args.split} galaxies: catalog "
                 f"g,r,i,z optimal-photometry fluxes (matched-filter noise) plus the true, noiseless shapes "
                 f"{limit['catalog_flux_and_true_shapes_r2']:.4f}; the fluxes alone {limit['catalog_flux_r2']:.4f}; "
                 f"noiseless fluxes {limit['noiseless_flux_r2']:.4f} (what the noise costs); S1's own protocol "
                 f"(kNN k=64, standardized) on the catalog z magnitude and colours as if they were an embedding: "
                 f"{limit['catalog_flux_knn_r2']:.4f}. Over all {limit['n_all']} normal {args.split} galaxies: "
                 f"fluxes and shapes {limit['catalog_flux_and_true_shapes_r2_all']:.4f}, fluxes "
                 f"{limit['catalog_flux_r2_all']:.4f}, kNN {limit['catalog_flux_knn_r2_all']:.4f}")
    wall = time.perf_counter() - start
    log.info("%s-only redshift R² on %d %s galaxies: %s", args.modality, limit["n"], args.split, limit)
    key, target = C.redshift_context(args.modality, "information_limit_r2")
    record(key, value, target=target, unit="R²",
           baseline=f"none: an upper bound for any estimate from the {args.modality} alone", command=command,
           notes=notes, wall_s=round(wall, 1), **{k: round(v, 5) if isinstance(v, float) else v
                                                   for k, v in limit.items()})


if __name__ == "__main__":
    main()
