"""The variable-star population: AstroM3's ten classes with their physical properties.

Class frequencies follow AstroM3's 21,440 ASAS-SN × LAMOST stars (EW 6168,
SR 4590, EA 2916, RRAB 2351, EB 1976, ROT 1839, RRC 796, HADS 281, M 268,
DSCT 255), so rare classes stay rare. Per class (literature ranges):

====  ==================  =================  ============  =======================================
cls   period [d]          V amplitude [mag]  Teff [K]      luminosity
====  ==================  =================  ============  =======================================
EW    0.22–0.9 (≈0.37)    0.15–0.8           4300–7500     M_V = −4.44 log P + 3.02 (B−V) + 0.12
EA    0.4–50 (≈2)         eclipse 0.2–1.5    4500–12000    main sequence, two stars
EB    0.3–10 (≈0.9)       0.2–0.9            5000–11000    main sequence / subgiant pair
RRAB  0.42–0.9 (≈0.58)    0.3–1.4 (Bailey)   ≈6400         M_V = 0.6 + 0.2 ([Fe/H] + 1.5), halo
RRC   0.2–0.45 (≈0.32)    0.25–0.55          ≈7200         M_V ≈ 0.55, halo
HADS  0.04–0.25 (≈0.1)    0.3–0.9            ≈7500         M_V = −2.89 log P − 1.31
DSCT  0.03–0.25 (≈0.08)   0.05–0.3           ≈7600         same relation, 0.3 mag scatter
M     100–800 (≈300)      2.5–7              2500–3500     M_K = −3.51 (log P − 2.38) − 7.25
SR    20–800 (≈80)        0.1–1.5            2800–4000     M_K ≈ −3.5 (log P − 2) − 6.0
ROT   0.3–60 (≈6)         0.03–0.25          3300–6200     main sequence (30% subgiants)
====  ==================  =================  ============  =======================================

Apparent mean V magnitudes span 10–17 (ASAS-SN's range; 9–15 for M and SR giants); distances follow from
V, the absolute magnitude and extinction A_V(d) = 3.1 E(B−V)_total (1 − exp(−d |sin b| / 125 pc)).
Kinematics: thin disk, thick disk (M, SR) or halo (RR Lyrae) velocity dispersions.
"""

from __future__ import annotations

import numpy as np

from astrofm.sim.photometry import AB_MINUS_VEGA
from astrofm.sim.sky import foreground_ebv, galactic
from astrofm.sim.stellar_sed import magnitudes
from astrofm.sim.tables import Table

CLASSES = ("EW", "SR", "EA", "RRAB", "EB", "ROT", "RRC", "HADS", "M", "DSCT")
CLASS_COUNTS = np.array([6168, 4590, 2916, 2351, 1976, 1839, 796, 281, 268, 255])
#: Classes whose light curves are strictly periodic (SR is semi-regular).
PERIODIC = ("EW", "EA", "RRAB", "EB", "ROT", "RRC", "HADS", "M", "DSCT")
_DISK_SIGMA, _THICK_SIGMA, _HALO_SIGMA = 30.0, 60.0, 150.0  # km/s per component


def _lognormal(rng: np.random.Generator, n: int, centre: float, dex: float, lo: float, hi: float) -> np.ndarray:
    return np.clip(10 ** (np.log10(centre) + rng.normal(0, dex, n)), lo, hi)


def teff_to_bv(teff: np.ndarray) -> np.ndarray:
    """B−V colour of a dwarf of effective temperature ``teff`` [K] (Ballesteros 2012, inverted)."""
    t = np.asarray(teff, dtype=np.float64)
    lo, hi = np.full_like(t, -0.4), np.full_like(t, 2.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        hotter = 4600 * (1 / (0.92 * mid + 1.7) + 1 / (0.92 * mid + 0.62)) > t
        lo, hi = np.where(hotter, mid, lo), np.where(hotter, hi, mid)
    return (lo + hi) / 2


def main_sequence_mv(teff: np.ndarray) -> np.ndarray:
    """Absolute V magnitude of a main-sequence star of ``teff`` [K].

    L ∝ Teff^7.3 (the main-sequence mass–luminosity and mass–temperature
    relations combined) and a bolometric correction −12 x² (hot) or −45 x²
    (cool), x = log10(Teff / 5772 K): M_V ≈ 4.8 (Sun), 10.8 (3500 K), 1.2 (10000 K).
    """
    x = np.log10(np.asarray(teff, dtype=np.float64) / 5772.0)
    bolometric_correction = np.where(x > 0, -12.0, -45.0) * x**2 - 0.07
    return 4.74 - 2.5 * 7.3 * x - bolometric_correction


def _class_parameters(rng: np.random.Generator, cls: str, n: int) -> Table:
    """Period [d], V amplitude [mag], Teff [K], logg, [Fe/H], absolute V [mag], dust-shell fraction."""
    zeros = np.zeros(n)
    disk_feh = rng.normal(-0.1, 0.25, n)
    if cls == "EW":
        period = _lognormal(rng, n, 0.37, 0.12, 0.22, 0.9)
        teff = np.clip(rng.normal(5900, 700, n), 4300, 7500)
        mv = -4.44 * np.log10(period) + 3.02 * teff_to_bv(teff) + 0.12 + rng.normal(0, 0.25, n)
        return dict(period=period, amplitude=rng.uniform(0.15, 0.8, n), teff=teff, logg=np.full(n, 4.2),
                    feh=disk_feh, abs_mag_v=mv, dust=zeros, vsini=rng.uniform(80, 160, n))
    if cls in ("EA", "EB"):
        ea = cls == "EA"
        period = _lognormal(rng, n, 2.0 if ea else 0.9, 0.4 if ea else 0.3, 0.4 if ea else 0.3, 50.0 if ea else 10.0)
        teff = np.clip(rng.normal(7000, 1500 if ea else 1200, n), 4500 if ea else 5000, 12000 if ea else 11000)
        mv = main_sequence_mv(teff) - (0.5 if ea else 0.8) + rng.normal(0, 0.4, n)
        amplitude = rng.uniform(0.2, 1.5, n) if ea else rng.uniform(0.2, 0.9, n)
        return dict(period=period, amplitude=amplitude, teff=teff, logg=np.full(n, 4.0 if ea else 3.8),
                    feh=disk_feh, abs_mag_v=mv, dust=zeros, vsini=rng.uniform(20, 80, n))
    if cls in ("RRAB", "RRC"):
        ab = cls == "RRAB"
        period = np.clip(rng.normal(0.58, 0.07, n), 0.42, 0.9) if ab else np.clip(rng.normal(0.32, 0.04, n), 0.2, 0.45)
        amplitude = (np.clip(2.5 - 3.0 * period + rng.normal(0, 0.1, n), 0.3, 1.4) if ab
                     else rng.uniform(0.25, 0.55, n))
        feh = rng.normal(-1.5, 0.4, n)
        teff = rng.normal(6400 if ab else 7200, 200, n)
        mv = 0.6 + 0.2 * (feh + 1.5) + rng.normal(0, 0.1, n) - (0.05 if not ab else 0.0)
        return dict(period=period, amplitude=amplitude, teff=teff, logg=np.full(n, 2.7), feh=feh, abs_mag_v=mv,
                    dust=zeros, vsini=rng.uniform(5, 15, n))
    if cls in ("HADS", "DSCT"):
        hads = cls == "HADS"
        period = _lognormal(rng, n, 0.1 if hads else 0.08, 0.2 if hads else 0.25, 0.04 if hads else 0.03, 0.25)
        amplitude = rng.uniform(0.3, 0.9, n) if hads else rng.uniform(0.05, 0.3, n)
        teff = rng.normal(7500 if hads else 7600, 400 if hads else 500, n)
        mv = -2.89 * np.log10(period) - 1.31 + rng.normal(0, 0.15 if hads else 0.3, n)
        return dict(period=period, amplitude=amplitude, teff=teff, logg=np.full(n, 3.8), feh=disk_feh,
                    abs_mag_v=mv, dust=zeros, vsini=rng.uniform(20, 150, n))
    if cls in ("M", "SR"):
        mira = cls == "M"
        period = _lognormal(rng, n, 300.0 if mira else 80.0, 0.15 if mira else 0.3, 100.0 if mira else 20.0, 800.0)
        amplitude = rng.uniform(2.5, 7.0, n) if mira else np.clip(rng.exponential(0.5, n) + 0.1, 0.1, 1.5)
        teff = np.clip(rng.normal(3000 if mira else 3400, 200 if mira else 250, n), 2500 if mira else 2800,
                       3500 if mira else 4000)
        mk = (-3.51 * (np.log10(period) - 2.38) - 7.25 + rng.normal(0, 0.15, n) if mira
              else -3.5 * (np.log10(period) - 2.0) - 6.0 + rng.normal(0, 0.4, n))
        return dict(period=period, amplitude=amplitude, teff=teff, logg=np.full(n, 0.5 if mira else 1.0),
                    feh=rng.normal(-0.4, 0.3, n), abs_mag_k=mk, dust=rng.uniform(0.2, 0.5, n) if mira
                    else rng.uniform(0.0, 0.2, n), vsini=rng.uniform(2, 8, n))
    if cls == "ROT":
        teff = np.clip(rng.normal(4800, 700, n), 3300, 6200)
        subgiant = rng.random(n) < 0.3
        mv = main_sequence_mv(teff) - np.where(subgiant, 2.0, 0.0) + rng.normal(0, 0.3, n)
        return dict(period=_lognormal(rng, n, 6.0, 0.4, 0.3, 60.0), amplitude=rng.uniform(0.03, 0.25, n),
                    teff=teff, logg=np.where(subgiant, 3.5, 4.5), feh=disk_feh, abs_mag_v=mv, dust=zeros,
                    vsini=rng.uniform(10, 60, n))
    if cls == "constant":  # microlensing sources
        teff = np.clip(rng.normal(5600, 800, n), 4300, 7500)
        return dict(period=np.full(n, np.nan), amplitude=zeros, teff=teff, logg=np.full(n, 4.3), feh=disk_feh,
                    abs_mag_v=main_sequence_mv(teff) + rng.normal(0, 0.3, n), dust=zeros, vsini=rng.uniform(2, 10, n))
    if cls == "flare":  # active M dwarfs
        teff = rng.uniform(2900, 3500, n)
        return dict(period=np.full(n, np.nan), amplitude=zeros, teff=teff, logg=np.full(n, 5.0), feh=disk_feh,
                    abs_mag_v=main_sequence_mv(teff) + rng.normal(0, 0.3, n), dust=zeros, vsini=rng.uniform(5, 30, n))
    raise ValueError(f"unknown star class {cls!r}")


def sample_classes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Class index (into :data:`CLASSES`) of ``n`` stars, with AstroM3's frequencies."""
    return rng.choice(len(CLASSES), size=n, p=CLASS_COUNTS / CLASS_COUNTS.sum())


def sample_stars(rng: np.random.Generator, ra: np.ndarray, dec: np.ndarray, classes: list[str]) -> Table:
    """Latent properties of stars at true positions (ra, dec) [deg] of the given class names.

    Class names are the AstroM3 classes or ``constant`` / ``flare`` (anomaly hosts).
    Returns period [d], amplitude_v [mag], teff [K], logg, feh, abs_mag_v, mean_vmag,
    distance_pc, av [mag], ebv_total, l, b [deg], pmra, pmdec [mas/yr], rv_kms, vsini_kms,
    dust (IR-excess fraction), t0 [MJD].
    """
    n = len(ra)
    names = np.asarray(classes)
    out: Table = {}
    for cls in dict.fromkeys(classes):
        rows = np.flatnonzero(names == cls)
        params = _class_parameters(rng, cls, len(rows))
        for key, values in params.items():
            out.setdefault(key, np.full(n, np.nan))[rows] = values
    l_deg, b_deg = galactic(ra, dec)
    ebv_total = foreground_ebv(l_deg, b_deg)
    sin_b = np.maximum(np.abs(np.sin(np.deg2rad(b_deg))), 0.02)
    # Miras and SRs are set by their K-band (2MASS Ks, Vega) luminosity: V − Ks of the star's own SED, the
    # colour its written magnitudes will have, so that the metadata keep the period–luminosity relation
    abs_v = out.get("abs_mag_v", np.full(n, np.nan)).copy()
    cool = np.isnan(abs_v)
    if cool.any():
        ks_minus_v = magnitudes(out["teff"][cool], out["dust"][cool], np.zeros(cool.sum()), np.zeros(cool.sum()))["Ks"]
        abs_v[cool] = out["abs_mag_k"][cool] - ks_minus_v + AB_MINUS_VEGA["Ks"]
    # more faint stars than bright ones; giants (M, SR) are seen brighter, RR Lyrae fainter
    bright, span = np.where(np.isin(names, ["M", "SR"]), 9.0, 10.0), np.where(np.isin(names, ["M", "SR"]), 6.0, 7.0)
    mean_v = bright + span * rng.power(1.6, n)
    lo, hi = np.full(n, 1.0), np.full(n, 2e5)
    for _ in range(50):  # solve V = M_V + 5 log10(d / 10 pc) + A_V(d) for d [pc]
        mid = np.sqrt(lo * hi)
        a_v = 3.1 * ebv_total * (1 - np.exp(-mid * sin_b / 125.0))
        too_bright = abs_v + 5 * np.log10(mid / 10) + a_v < mean_v
        lo, hi = np.where(too_bright, mid, lo), np.where(too_bright, hi, mid)
    distance = np.sqrt(lo * hi)
    a_v = 3.1 * ebv_total * (1 - np.exp(-distance * sin_b / 125.0))
    halo = np.isin(names, ["RRAB", "RRC"])
    thick = np.isin(names, ["M", "SR"])
    sigma_v = np.where(halo, _HALO_SIGMA, np.where(thick, _THICK_SIGMA, _DISK_SIGMA))
    velocity = rng.normal(0, 1, (n, 3)) * sigma_v[:, None] + np.where(halo, -200.0, -15.0)[:, None] * [0, 1, 0]
    kpc = distance / 1e3
    finite_period = np.where(np.isfinite(out["period"]), out["period"], 1.0)
    return {
        "class": names.astype("S8"),
        "period": out["period"], "amplitude_v": out["amplitude"], "teff": out["teff"], "logg": out["logg"],
        "feh": out["feh"], "abs_mag_v": abs_v, "mean_vmag": mean_v, "distance_pc": distance, "av": a_v,
        "ebv_total": ebv_total, "l": l_deg, "b": b_deg,
        "pmra": velocity[:, 0] / (4.74 * kpc), "pmdec": velocity[:, 1] / (4.74 * kpc), "rv_kms": velocity[:, 2],
        "vsini_kms": out["vsini"], "dust": out["dust"],
        "t0": 56000.0 + rng.random(n) * finite_period,
    }


def impostors(rng: np.random.Generator, stars: Table, rows: np.ndarray) -> Table:
    """Copy of the spectrum-shaping properties of ``stars`` where ``rows`` (bool) get those of a
    star of another AstroM3 class (for mismatched-spectrum anomalies)."""
    out = {k: stars[k].copy() for k in ("teff", "logg", "feh", "vsini_kms", "dust", "class")}
    for i in np.flatnonzero(rows):
        choices = [c for c in CLASSES if c.encode() != stars["class"][i]]
        other = choices[int(rng.integers(len(choices)))]
        params = _class_parameters(rng, other, 1)
        for key in ("teff", "logg", "feh", "dust"):
            out[key][i] = params[key][0]
        out["vsini_kms"][i] = params["vsini"][0]
        out["class"][i] = other.encode()
    return out
