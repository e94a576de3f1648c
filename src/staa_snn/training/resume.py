"""What a resumed run may change, and what it says it does."""

from __future__ import annotations

from ..neurons import NEURONS
from .config import Config
from .run_folder import RunFolderError

__all__ = ["CONTINUABLE", "config_differences", "resume_changes"]

# Keys that change how a run is carried out, not what it computes: free on any resume.
HOW = {"train.progress", "train.threads", "train.device", "train.checkpoint_every", "train.check_every", "train.log_every",
       "train.memory", "train.memory_budget",
       "data.workers",
       "data.root", "data.cache_dir", "data.test_batch_size", "output.tensorboard", "output.dir", "output.name",
       "model.backend", "model.recompute"}
# Keys a finished run can continue with (more epochs).
CONTINUABLE = HOW | {"train.epochs"}
# Keys that change the model or its inputs: a checkpoint of the old cannot continue as the new.
FIXED = {"model.name", "model.neuron", "model.T", "data.name", "data.size", "data.split_by", "data.options", "data.mean",
         "data.std"}


def _resumable_model_keys() -> set[str]:
    """``model.init`` and the neuron options that a neuron declares free to change on resume."""
    return {"model.init"} | {f"model.{o}" for cls in NEURONS.values() for o in cls.resumable_options}


def _fixed(key: str) -> bool:
    return key in FIXED or (key.startswith("model.") and key not in HOW and key not in _resumable_model_keys())


def resume_changes(old: Config, new: Config, *, epochs_done: int, mid_epoch: bool, run: str) -> dict:
    """The keys whose values differ between the checkpoint's config and the one asked for,
    ``{key: (old, new)}``; raises :class:`RunFolderError` when the resume would not do what
    was asked:

    * a key that changes the model or its inputs (``model.name``, ``model.T``, a neuron option
      that shapes the parameters, ``data.size``, ...);
    * new values on a finished run that does not train for longer (they would change nothing).
    """
    before, after = old.flat(), new.flat()
    changed = {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
               if before.get(k) != after.get(k)}
    fixed = [k for k in changed if _fixed(k)]
    if fixed:
        raise RunFolderError(
            f"cannot resume {run} with a different {', '.join(_show(k, changed[k]) for k in fixed)}: "
            f"that changes the model or its inputs; start a new run instead (e.g. output.name=...)")
    finished = not mid_epoch and epochs_done >= old.train.epochs
    if finished and new.train.epochs <= epochs_done:
        effective = [k for k in changed if k not in CONTINUABLE]
        if effective:
            raise RunFolderError(
                f"{run} has finished (epoch {epochs_done}/{old.train.epochs}); "
                f"{', '.join(_show(k, changed[k]) for k in effective)} would change nothing: raise "
                f"train.epochs to continue with the new value(s), or start a new run (e.g. output.name=...)")
    return changed


def config_differences(given: Config, run: Config) -> dict:
    """``{key: (given, run)}`` for what a config asked for on resume and the run's own config
    (both with the same overrides) compute differently: every key but how the run is carried
    out (:data:`HOW`); those that change the model or its inputs first."""
    a, b = given.flat(), run.flat()
    keys = sorted(set(a) | set(b), key=lambda k: (not _fixed(k), k))
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k) and k not in HOW}


def _show(key: str, values: tuple) -> str:
    return f"{key} ({values[0]!r} -> {values[1]!r})"


def describe(changed: dict) -> str:
    """``"optim.lr 0.1 -> 0.01, train.epochs 8 -> 12"`` for the values that matter (not how it runs)."""
    shown = [f"{k} {v[0]!r} -> {v[1]!r}" for k, v in changed.items() if k not in HOW]
    return ", ".join(shown)
