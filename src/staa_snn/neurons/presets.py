"""Neuron presets: the constants of the spec's LIF (method.md, sections 1-2) or MPBN's (section 11).

A preset fills the neuron arguments left at ``None``; an argument given
explicitly wins. ``neuron_preset="mpbn"`` with ``mpbn=False`` is MPBN's neuron
without BN_mp (the reading in which the block is built but switched off).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["NEURON_PRESETS", "NeuronPreset", "get_preset"]


@dataclass(frozen=True)
class NeuronPreset:
    tau: float             # sets M = 1 - 1/tau (and N = 1/tau with decay_input)
    decay_input: bool      # N = 1/tau (True) or 1 (False)
    v_threshold: float     # spikes where H >= V_th (with BN_mp: BN_mp(H) >= V_th)
    surrogate: str         # the spike's surrogate gradient
    mpbn: bool             # BN_mp of the charged potential before the Heaviside

    def fill(self, **given):
        """``given`` with every ``None`` replaced by this preset's value."""
        return {k: getattr(self, k) if v is None else v for k, v in given.items()}


NEURON_PRESETS: dict[str, NeuronPreset] = {
    # H = 0.5 V + 0.5 X, S = 1(H >= 1), rectangle surrogate of width 1
    "spec": NeuronPreset(tau=2.0, decay_input=True, v_threshold=1.0, surrogate="rectangle", mpbn=False),
    # H = 0.25 V + X, S = 1(BN_mp(H) >= 0.5), MPBN's tanh surrogate (alpha 3 over a window of width 1)
    "mpbn": NeuronPreset(tau=4 / 3, decay_input=False, v_threshold=0.5, surrogate="tanh", mpbn=True),
}

PRESET_FIELDS = tuple(f.name for f in fields(NeuronPreset))


def get_preset(name: str) -> NeuronPreset:
    if name not in NEURON_PRESETS:
        raise ValueError(f"unknown neuron_preset {name!r}; expected one of {sorted(NEURON_PRESETS)}")
    return NEURON_PRESETS[name]
