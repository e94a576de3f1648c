"""Training and evaluation: typed configs, the training loop, checkpoints, DDP.

``staa-snn train`` and ``staa-snn eval`` are thin wrappers over
:func:`load_config`, :func:`train` and :func:`evaluate_checkpoint`.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, ConfigError, apply_override, bundled_configs, load_config, parse_override, resolve_config
from .builders import build_datasets, build_model, lr_factor
from .epoch import TrainingDiverged
from .evaluate import evaluate, evaluate_checkpoint, evaluate_weights
from .trained import (RunTime, checkpoint_config, format_duration, input_metadata, load_pretrained, load_trained,
                      run_time, was_paused)
from .trainer import Trainer, TrainResult, train
from .preemption import TrainingPreempted
from .run_folder import RunFolder, RunFolderError, RunLocked

__all__ = [
    "Config", "ConfigError", "RunFolder", "RunFolderError", "RunLocked", "RunTime", "TrainResult", "Trainer", "TrainingDiverged",
    "TrainingPreempted",
    "build_datasets", "build_model", "bundled_configs", "checkpoint_config", "evaluate", "evaluate_checkpoint",
    "evaluate_weights", "format_duration", "input_metadata",
    "apply_override", "load_checkpoint", "load_config", "load_pretrained", "load_trained", "lr_factor", "parse_override", "resolve_config",
    "run_time", "save_checkpoint", "train", "was_paused",
]
