"""Spiking nets: a registry of VGG-13, ResNet-19/20, ResNet-18/34 with any neuron, and conversion."""

from .base import SpikingNet, time_major
from .convert import convert_neurons, is_lif_type
from .fold import fold_mpbn, set_backend
from .init import INIT_SCHEMES, init_weights
from .pretrained import list_pretrained, load_weights
from .layers import SpikingNeuron
from .neuron_factory import NEURON_KINDS, make_neuron, neuron_options
from .registry import create_model, list_models, load_pretrained, register_model

__all__ = [
    "INIT_SCHEMES", "NEURON_KINDS", "SpikingNet", "SpikingNeuron", "convert_neurons", "create_model", "fold_mpbn",
    "init_weights", "is_lif_type", "list_models", "list_pretrained", "load_pretrained", "load_weights", "make_neuron", "neuron_options",
    "register_model", "set_backend", "time_major",
]
