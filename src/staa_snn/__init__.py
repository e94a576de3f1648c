"""staa-snn: spiking neural networks with a spatial-temporal attention aggregator.

The package is layered so the method can be read off the code:

- :mod:`staa_snn.functional` -- the pure reference math of ``docs/method.md``
  (surrogates, LIF charge/fire/reset, PE, GC, SA, TSRD), one small file per idea;
- :mod:`staa_snn.neurons` -- stateful multi-step modules over time-first
  tensors ``[T, B, ...]``: :class:`~staa_snn.neurons.LIF`,
  :class:`~staa_snn.neurons.AdaptiveLIF`, :class:`~staa_snn.neurons.STAALIF`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
