"""Training and evaluation: typed configs, the training loop, checkpoints, DDP.

``staa-snn train`` and ``staa-snn eval`` are thin wrappers over
:func:`load_config`, :func:`train` and :func:`evaluate_checkpoint`.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, ConfigError, load_config, parse_override
from .engine import (TrainingDiverged, TrainResult, build_datasets, build_model, checkpoint_config, evaluate,
                     evaluate_checkpoint, load_trained, lr_factor, train)

__all__ = [
    "Config", "ConfigError", "TrainResult", "TrainingDiverged", "build_datasets", "build_model",
    "checkpoint_config", "evaluate", "evaluate_checkpoint", "load_checkpoint", "load_config", "load_trained",
    "lr_factor", "parse_override", "save_checkpoint", "train",
]
