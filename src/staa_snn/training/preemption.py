"""Stopping cleanly on a scheduler's signal: SIGUSR2 or SIGUSR1 (SLURM's warning before a time
limit or a preemption, ``sbatch --signal``; submitit asks for USR2) and SIGTERM (preemption,
``kill``, torchrun passing on a stop).

The handler only notes the signal. The training loop looks at the note after each optimiser
step (under DDP, at its check points, where the ranks agree anyway), writes a mid-epoch
checkpoint and raises :class:`TrainingPreempted`; ``--resume auto`` continues exactly from it.
A signal during evaluation is honoured at the end of that epoch, after its checkpoint.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["STOP_SIGNALS", "StopRequest", "TrainingPreempted"]

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGUSR1", None), getattr(signal, "SIGUSR2", None), signal.SIGTERM)
                     if s is not None)


class TrainingPreempted(RuntimeError):
    """A stop signal arrived; the run was checkpointed where it stood (resume with ``--resume auto``)."""

    def __init__(self, message: str, *, signum: int, epoch: int, step: int,
                 hint: str = "continue with --resume auto") -> None:
        super().__init__(f"{message}; {hint}")
        self.what, self.hint = message, hint  # what happened; how to continue (a caller may know better)
        self.signum, self.epoch, self.step = signum, epoch, step

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by this signal (``128 + signum``)."""
        return 128 + self.signum


class StopRequest:
    """While entered (in the main thread; elsewhere it does nothing), notes the first of
    ``signals`` that arrives in :attr:`signum`; the handlers that were there come back on exit."""

    def __init__(self, signals=STOP_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _note(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"
