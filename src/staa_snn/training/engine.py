"""The names the engine module held before it became the modules beside it, from where they live
now (``from staa_snn.training.engine import tet_loss`` keeps working):

- :mod:`.builders` -- the net, the datasets, the optimiser and its parameter groups, the schedule;
- :mod:`.losses` -- ``optim.loss`` (:data:`~.losses.LOSSES`) and the check of a ``loss_fn``;
- :mod:`.trainer` -- :func:`train` and the :class:`Trainer`'s stages 1 to 3;
- :mod:`.epoch` -- the epoch loop, its end and the checkpoints (stages 4 to 6);
- :mod:`.evaluate` -- :func:`evaluate`, :func:`evaluate_checkpoint`, :func:`evaluate_weights`;
- :mod:`.trained` -- :func:`load_trained`, :func:`load_pretrained`, the input metadata;
- :func:`~staa_snn.kernels.resolve_backend` is in :mod:`staa_snn.kernels`.
"""

from ..kernels import AUTO_COMPILE_MIN_STEPS, resolve_backend
from .builders import build_datasets, build_model, build_optimizer, lr_factor, parameter_groups
from .epoch import TrainingDiverged
from .evaluate import evaluate, evaluate_checkpoint, evaluate_weights
from .losses import LOSSES, LossFn, mean_logits_loss, soft_cross_entropy, tet_loss
from .trained import checkpoint_config, input_metadata, load_pretrained, load_trained
from .trainer import Callback, TrainResult, Trainer, as_config, train

__all__ = ["AUTO_COMPILE_MIN_STEPS", "Callback", "LOSSES", "LossFn", "TrainResult", "Trainer", "TrainingDiverged", "as_config",
           "build_datasets", "build_model", "build_optimizer", "checkpoint_config", "evaluate", "evaluate_checkpoint",
           "evaluate_weights", "input_metadata", "load_pretrained", "load_trained", "lr_factor", "mean_logits_loss",
           "parameter_groups", "resolve_backend", "soft_cross_entropy", "tet_loss", "train"]
