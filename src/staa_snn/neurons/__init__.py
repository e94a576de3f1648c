"""Stateful multi-step neurons over time-first tensors ``[T, B, ...]``."""

from .adaptive import MN_SHAPES, AdaptiveLIF
from .base import NEURONS, MultiStepNeuron, block_types, recorded, register_neuron
from .blocks import GlobalContext, PositionEncoding, StepAttention
from .lif import LIF
from .staa import PE_POSITIONS, STAALIF

__all__ = [
    "LIF", "AdaptiveLIF", "STAALIF", "MultiStepNeuron", "NEURONS", "block_types", "recorded", "register_neuron",
    "GlobalContext", "PositionEncoding", "StepAttention", "MN_SHAPES", "PE_POSITIONS",
]
