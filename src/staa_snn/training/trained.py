"""What a training run leaves, read back: the config of a checkpoint, the net of a checkpoint
(:func:`load_trained`) or of any weights (:func:`load_pretrained`), and the input metadata a
checkpoint or an export stores."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..data import dataset_info, normalization
from ..errors import ConfigError
from ..models import load_pretrained as load_exported
from ..models.pretrained import describe_inputs, resolve_path
from .builders import build_model
from .checkpoint import load_checkpoint
from .config import Config, apply_override

__all__ = ["RunTime", "checkpoint_config", "format_duration", "input_metadata", "load_pretrained", "load_trained",
           "num_classes_of", "run_time", "was_paused"]


@dataclass(frozen=True)
class RunTime:
    """How long a run's epochs took: ``total_s`` (the sum of their wall-clock times) and
    ``median_epoch_s`` over ``epochs`` timed epochs. A run that was paused (a suspended process,
    a preempted job waiting) or shared its cores has a few long epochs in the sum; the median
    epoch times the epochs, :attr:`usual_s`, is its time at its usual pace."""

    total_s: float
    median_epoch_s: float | None
    epochs: int

    @property
    def usual_s(self) -> float | None:
        return None if self.median_epoch_s is None else self.median_epoch_s * self.epochs

    @property
    def paused(self) -> bool:
        """Whether some epochs were paused or shared their cores (:func:`was_paused`)."""
        return was_paused(self.total_s, self.usual_s)


def was_paused(total_s: float | None, usual_s: float | None) -> bool:
    """Whether a time summed over epochs is over 10% longer than at the usual pace (the median
    epoch times the epochs): some epochs were paused or shared their cores."""
    return bool(total_s and usual_s and total_s > 1.1 * usual_s)


def format_duration(seconds: float) -> str:
    """Seconds as people read them: ``"42 s"``, ``"12.5 min"``, ``"1.97 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def run_time(history: list[dict], up_to_epoch: int | None = None) -> RunTime:
    """The :class:`RunTime` of a run's history records (``metrics.jsonl``, a checkpoint's
    ``history``), those up to ``up_to_epoch`` when given; epochs without a time do not count."""
    times = [h["epoch_time_s"] for h in history or []
             if h.get("epoch_time_s") is not None and (up_to_epoch is None or h["epoch"] <= up_to_epoch)]
    return RunTime(sum(times), statistics.median(times) if times else None, len(times))


def input_metadata(cfg: Config, classes=None, sensor=None) -> dict:
    """What a deployed net needs to know of its inputs and outputs, stored with the weights:
    the class names (index -> name; ``None`` when the data has none), the normalisation
    (``None``: not normalised), the input size and channels, the kind of data and, for event
    data, the camera's ``sensor`` ``[width, height]`` (recordings whose files state none are
    taken to be of it)."""
    info = dataset_info(cfg.data.name)
    meta = {"classes": [str(c) for c in classes] if classes is not None else None,
            "normalization": normalization(cfg.data.name, cfg.data.mean, cfg.data.std),
            "size": cfg.data.input_size, "in_channels": info.in_channels, "kind": info.kind}
    if sensor is not None and info.kind == "events":
        meta["sensor"] = [int(sensor[0]), int(sensor[1])]
    return meta


def num_classes_of(model: nn.Module) -> int | None:
    if hasattr(model, "num_classes"):
        return int(model.num_classes)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


def checkpoint_config(ckpt: dict, overrides=(), *, require_root: bool = True) -> Config:
    """The config a checkpoint was trained with, then ``section.key=value`` overrides; validated."""
    tree = ckpt["config"]
    if "weight_decay_on" not in tree.get("optim", {}):  # written before the key existed: decay was on all
        tree = {**tree, "optim": {**tree.get("optim", {}), "weight_decay_on": "all"}}
    cfg = Config.from_dict(tree)
    for text in overrides:
        apply_override(cfg, text)
    return cfg.validate(require_root=require_root)


def load_trained(path: str | Path, overrides=(), *, model: nn.Module | None = None,
                 require_root: bool = True) -> tuple[Config, nn.Module, dict]:
    """``(config, model in eval mode, checkpoint)`` from a checkpoint written by :func:`train`.

    A run trained on a model passed in from Python (``train(cfg, model=MyNet())``) needs that
    model again: ``load_trained(path, model=MyNet())`` loads the weights into it (strictly); the
    config's ``model`` section was not used by such a run, and is not used to rebuild it."""
    ckpt = load_checkpoint(path)
    cfg = checkpoint_config(ckpt, overrides, require_root=require_root)
    python_model = ckpt.get("python_model")
    if model is None and python_model is not None:
        raise ConfigError(f"{path} was trained on a model passed in from Python ({python_model}), which a config "
                          f"cannot rebuild: in Python, staa_snn.training.load_trained({str(path)!r}, "
                          f"model={python_model.rpartition('.')[2]}(...))")
    if model is None:
        model = build_model(cfg, num_classes=ckpt["num_classes"])
    model.load_state_dict(ckpt["model"])
    model.pretrained_cfg = describe_inputs(cfg.model.name, cfg.model.T, cfg.data.name,
                                           ckpt.get("input") or input_metadata(cfg))
    return cfg, model.eval(), ckpt


def load_pretrained(path: str | os.PathLike, **overrides) -> nn.Module:
    """A net in ``eval()`` with ``pretrained_cfg`` from a ``.pt`` checkpoint written by :func:`train`
    (:func:`load_trained`) or from exported weights -- a shipped name, a folder or
    ``hf://owner/name[@revision]`` (:func:`staa_snn.models.load_pretrained`, which ``overrides``,
    create_model arguments, go to). This is ``staa_snn.load_pretrained``."""
    path = resolve_path(path)  # one download for both files
    if path.is_file() and path.suffix == ".pt":  # a checkpoint written by staa-snn train
        if overrides:
            raise ValueError(f"{path} is a checkpoint: create_model overrides apply to exported weights; "
                             f"set the backend on the loaded net (staa_snn.models.set_backend)")
        return load_trained(path, require_root=False)[1]
    return load_exported(path, **overrides)
