"""The energy model of the SNN literature, 45 nm CMOS (Horowitz, 2014): ``E = 0.9 pJ x #AC + 4.6 pJ
x #MAC``. A leaf module (no torch), so that the command line's defaults and the measuring layer
(:mod:`staa_snn.measure`, which counts #AC and #MAC) read the same numbers."""

from __future__ import annotations

__all__ = ["E_AC_PJ", "E_MAC_PJ", "energy_mj"]

E_AC_PJ = 0.9   # pJ per accumulate
E_MAC_PJ = 4.6  # pJ per multiply-accumulate


def energy_mj(ac, mac, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ):
    """``E = e_ac #AC + e_mac #MAC`` in mJ (numbers or tensors of counts)."""
    return (e_ac_pj * ac + e_mac_pj * mac) * 1e-9
