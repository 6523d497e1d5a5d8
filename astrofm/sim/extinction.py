"""Dust attenuation curves (published coefficients), as A_λ / A_V for wavelengths in Å.

- :func:`calzetti` — starburst attenuation of Calzetti et al. (2000), R_V = 4.05,
  used inside galaxies.
- :func:`ccm89` — Milky Way extinction of Cardelli, Clayton & Mathis (1989),
  R_V = 3.1, used for the Galactic foreground and for stars.

Beyond their published ranges both curves are continued smoothly and kept >= 0.
"""

from __future__ import annotations

import numpy as np

CALZETTI_RV = 4.05
MW_RV = 3.1


def calzetti(wave: np.ndarray) -> np.ndarray:
    """A_λ / A_V of the Calzetti (2000) law at ``wave`` [Å]."""
    x = np.asarray(wave, dtype=np.float64) / 1e4  # µm
    x = np.clip(x, 0.09, None)
    blue = 2.659 * (-2.156 + 1.509 / x - 0.198 / x**2 + 0.011 / x**3) + CALZETTI_RV
    red = 2.659 * (-1.857 + 1.040 / x) + CALZETTI_RV
    k = np.where(x < 0.63, blue, red)
    # past 2.2 µm the red branch turns negative: continue it as a power law from its 2.2 µm value
    k_22 = 2.659 * (-1.857 + 1.040 / 2.2) + CALZETTI_RV
    k = np.where(x > 2.2, k_22 * (x / 2.2) ** -1.8, k)
    return np.clip(k, 0.0, None) / CALZETTI_RV


def ccm89(wave: np.ndarray, r_v: float = MW_RV) -> np.ndarray:
    """A_λ / A_V of the CCM (1989) law at ``wave`` [Å] (infrared and optical branches)."""
    # short of 3030 Å (x > 3.3 /µm, not needed by any band here) the 3.3 /µm value is held
    x = np.minimum(1e4 / np.asarray(wave, dtype=np.float64), 3.3)  # 1/µm
    y = x - 1.82
    a_opt = (1 + 0.17699 * y - 0.50447 * y**2 - 0.02427 * y**3 + 0.72085 * y**4 + 0.01979 * y**5
             - 0.77530 * y**6 + 0.32999 * y**7)
    b_opt = (1.41338 * y + 2.28305 * y**2 + 1.07233 * y**3 - 5.38434 * y**4 - 0.62251 * y**5
             + 5.30260 * y**6 - 2.09002 * y**7)
    a_ir = 0.574 * x**1.61
    b_ir = -0.527 * x**1.61
    optical = x >= 1.1
    a = np.where(optical, a_opt, a_ir)
    b = np.where(optical, b_opt, b_ir)
    return np.clip(a + b / r_v, 0.0, None)


def transmission(wave: np.ndarray, a_v: np.ndarray, law: str = "ccm89") -> np.ndarray:
    """10^(-0.4 A_λ) for A_V (broadcast against ``wave``) and a law ``ccm89`` or ``calzetti``."""
    curve = ccm89(wave) if law == "ccm89" else calzetti(wave)
    return 10.0 ** (-0.4 * np.asarray(a_v) * curve)
