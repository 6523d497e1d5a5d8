"""Galaxy spectral energy distributions: two stellar populations, dust, nebular lines.

Rest-frame templates, per solar mass of stars, in erg/s/Å, on one log-λ grid
(900 Å – 30 µm, Δlnλ = 5e-5, i.e. 15 km/s):

- *old* (~10 Gyr): dwarf + giant continua (7500 K and 3500 K) with a 4000 Å
  break (D4000 ≈ 1.8), a steep UV drop and metal absorption (Ca II H&K, G band,
  Mg b, Na D, Ca triplet); AB absolute magnitude 5.8 at 5500 Å per M☉ (M/L_r ≈ 2.5);
  observed g−r ≈ 0.73 at z = 0.05 and ≈ 2.0 at z = 0.6, as for red-sequence galaxies;
- *young* (≲ 1 Gyr): a hot continuum (15000 K) with a Balmer break and strong
  Balmer absorption, 80× brighter per M☉ at 5500 Å;
- *dust emission* per unit SFR [M☉/yr]: mid-infrared bumps that carry W3/W4.

A component's SED is ``M [(1 − f_young) old + f_young young] · 10^(−0.4 A_λ) +
SFR · dust`` with Calzetti attenuation. Nebular lines scale with SFR: L(Hα) =
10^41.27 erg/s per M☉/yr (Kennicutt & Evans 2012), case-B Balmer ratios,
mass-dependent [N II]/Hα and [O III]/Hβ, attenuated by A_V(gas) = A_V / 0.44.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from astrofm.sim.extinction import calzetti

LN_WAVE_MIN = float(np.log(900.0))
DLN_WAVE = 5e-5
N_WAVE = int(np.ceil((np.log(3e5) - LN_WAVE_MIN) / DLN_WAVE)) + 1

_PC_CM = 3.0856775814913673e18
_L_SUN = 3.828e33  # erg/s
#: L_λ at 5500 Å [erg/s/Å] of a source of AB absolute magnitude 0.
_L5500_MAG0 = 4.0 * np.pi * (10.0 * _PC_CM) ** 2 * 3631e-23 * 2.99792458e18 / 5500.0**2

OLD_MAG_5500 = 5.8
YOUNG_MAG_5500 = OLD_MAG_5500 - 2.5 * np.log10(80.0)

#: (rest wavelength Å, equivalent width Å, Gaussian sigma Å) of stellar absorption features.
_OLD_ABSORPTION = (
    (3835.4, 1.0, 5.0), (3889.0, 1.5, 5.0), (3933.7, 9.0, 5.5), (3968.5, 8.0, 5.5), (4101.7, 1.5, 5.0),
    (4304.4, 5.0, 12.0), (4340.5, 1.5, 5.0), (4383.5, 1.5, 5.0), (4861.3, 1.8, 5.0), (5175.4, 4.5, 10.0),
    (5269.0, 2.0, 6.0), (5335.0, 1.5, 6.0), (5892.9, 3.0, 6.0), (6562.8, 1.5, 5.0), (8498.0, 1.0, 5.0),
    (8542.1, 2.5, 5.0), (8662.1, 2.0, 5.0),
)
_YOUNG_ABSORPTION = (
    (3835.4, 4.0, 9.0), (3889.0, 5.0, 10.0), (3933.7, 1.0, 4.0), (3970.1, 6.0, 10.0), (4101.7, 7.5, 12.0),
    (4340.5, 7.0, 12.0), (4861.3, 7.0, 12.0), (6562.8, 5.0, 12.0),
)

#: Nebular emission lines: name -> rest wavelength in air-like Å.
LINES = {
    "OII_3726": 3726.03, "OII_3729": 3728.82, "Hdelta": 4101.74, "Hgamma": 4340.47, "Hbeta": 4861.33,
    "OIII_4959": 4958.91, "OIII_5007": 5006.84, "NII_6548": 6548.05, "Halpha": 6562.80,
    "NII_6584": 6583.45, "SII_6716": 6716.44, "SII_6731": 6730.82,
}
LINE_WAVES = np.array(list(LINES.values()))


def rest_wave() -> np.ndarray:
    """The template grid [Å]."""
    return np.exp(LN_WAVE_MIN + DLN_WAVE * np.arange(N_WAVE))


def _planck_shape(wave: np.ndarray, temperature: float) -> np.ndarray:
    x = 1.4387769e8 / (wave * temperature)  # hc / (λ k T), λ in Å
    return wave**-5 / np.expm1(np.minimum(x, 700.0))


def _absorb(wave: np.ndarray, features: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    depth = np.zeros_like(wave)
    for centre, ew, sigma in features:
        near = np.abs(wave - centre) < 8 * sigma
        depth[near] += ew / (sigma * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((wave[near] - centre) / sigma) ** 2)
    return np.clip(1.0 - depth, 0.05, 1.0)


def _step(wave: np.ndarray, edge: float, width: float) -> np.ndarray:
    """0 redward of ``edge``, 1 blueward, smooth over ``width`` Å."""
    return 1.0 / (1.0 + np.exp(np.clip((wave - edge) / width, -60, 60)))


def _normalize(wave: np.ndarray, shape: np.ndarray, mag_5500: float) -> np.ndarray:
    at_5500 = np.interp(5500.0, wave, shape)
    return shape / at_5500 * _L5500_MAG0 * 10 ** (-0.4 * mag_5500)


@dataclass(frozen=True)
class Templates:
    """Rest-frame templates on :func:`rest_wave` [erg/s/Å per M☉; dust per M☉/yr]."""

    old: np.ndarray
    young: np.ndarray
    dust: np.ndarray
    attenuation: np.ndarray  # Calzetti A_λ / A_V

    def at(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(old, young, dust, A_λ/A_V) interpolated linearly at rest wavelengths ``wave`` [Å] (any shape)."""
        position = (np.log(wave) - LN_WAVE_MIN) / DLN_WAVE
        index = np.clip(position.astype(np.int64), 0, N_WAVE - 2)
        t = np.clip(position - index, 0.0, 1.0)
        return tuple(  # type: ignore[return-value]
            table[index] * (1.0 - t) + table[index + 1] * t
            for table in (self.old, self.young, self.dust, self.attenuation)
        )


@lru_cache(maxsize=1)
def templates() -> Templates:
    """The galaxy templates (built once per process, ~0.1 s)."""
    wave = rest_wave()
    dwarfs, giants = _planck_shape(wave, 7500.0), _planck_shape(wave, 3500.0)
    old = 0.6 * dwarfs / np.interp(5500.0, wave, dwarfs) + 0.4 * giants / np.interp(5500.0, wave, giants)
    old *= 1.0 - (1.0 - 1.0 / 1.8) * _step(wave, 4000.0, 25.0)
    old *= np.where(wave < 3800.0, (wave / 3800.0) ** 3, 1.0)
    old *= _absorb(wave, _OLD_ABSORPTION)
    young = _planck_shape(wave, 15000.0)
    young *= 1.0 - 0.35 * _step(wave, 3646.0, 20.0)
    young *= np.where(wave < 1300.0, (wave / 1300.0) ** 2, 1.0)
    young *= _absorb(wave, _YOUNG_ABSORPTION)
    l_ir = 1e10 * _L_SUN  # per M☉/yr of star formation (Kennicutt 1998)
    dust = np.zeros_like(wave)
    for fraction, centre, width in ((0.15, 12e4, 0.3), (0.25, 30e4, 0.4)):
        lam_l_lam = fraction * l_ir / (width * np.sqrt(2 * np.pi)) * np.exp(-0.5 * (np.log(wave / centre) / width) ** 2)
        dust += lam_l_lam / wave
    return Templates(_normalize(wave, old, OLD_MAG_5500), _normalize(wave, young, YOUNG_MAG_5500), dust,
                     calzetti(wave))


def component_sed(wave: np.ndarray, mass: np.ndarray, f_young: np.ndarray, a_v: np.ndarray,
                  sfr: np.ndarray, values: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """L_λ [erg/s/Å] of components at rest wavelengths ``wave`` (N, L).

    ``mass`` [M☉], ``f_young`` (mass fraction), ``a_v`` [mag], ``sfr`` [M☉/yr], all (N,).
    ``values`` may hold ``templates().at(wave)`` already computed for these wavelengths.
    """
    old, young, dust, attenuation = values if values is not None else templates().at(wave)
    col = (slice(None), None)
    stars = mass[col] * ((1.0 - f_young[col]) * old + f_young[col] * young)
    return stars * 10.0 ** (-0.4 * a_v[col] * attenuation) + sfr[col] * dust


def line_luminosities(log_mstar: np.ndarray, sfr: np.ndarray, a_v_star: np.ndarray) -> np.ndarray:
    """Attenuated nebular line luminosities [erg/s], (N, len(LINES)), in the order of :data:`LINES`."""
    h_alpha = sfr * 10**41.27
    h_beta = h_alpha / 2.86
    log_n2 = np.clip(-0.45 + 0.3 * (log_mstar - 10.0), -1.3, -0.25)
    log_o3 = np.clip(0.25 - 0.55 * (log_mstar - 9.5), -0.8, 0.75)
    log_o2 = np.clip(0.05 - 0.25 * (log_mstar - 10.0), -0.4, 0.35)  # [O II]3727 / Hβ·2.86
    n2 = h_alpha * 10**log_n2
    o3 = h_beta * 10**log_o3
    o2 = h_alpha * 10**log_o2
    s2 = 0.3 * h_alpha
    intrinsic = np.stack([
        o2 / 2.3, o2 * 1.3 / 2.3, h_beta * 0.259, h_beta * 0.469, h_beta, o3 / 2.98, o3, n2 / 3.0, h_alpha,
        n2, s2 * 0.58, s2 * 0.42,
    ], axis=-1)
    a_gas = a_v_star / 0.44
    return intrinsic * 10.0 ** (-0.4 * a_gas[:, None] * calzetti(LINE_WAVES)[None, :])
