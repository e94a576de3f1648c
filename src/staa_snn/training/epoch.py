"""The loop of one epoch and what ends it: the optimiser steps with running totals on the device
(read only at check points), stop signals and mid-epoch checkpoints, the epoch's evaluation and
record, and the checkpoints (:class:`EpochLoop`, the stages 4 to 6 of a :class:`~.trainer.Trainer`).

The loop never waits for the device inside a step: loss sums, correct counts and
the finite check stay on the device and are read every ``train.check_every``
steps, before every checkpoint and at the end of the epoch.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .. import __version__
from ..models import SpikingNet
from . import distributed as ddp
from .checkpoint import rng_state, save_checkpoint
from .config import eval_split
from .console import progress_bar, say
from .evaluate import autocast_context, evaluate, step_logits
from .loaders import sample_seed
from .losses import check_loss
from .preemption import TrainingPreempted
from .trained import input_metadata, num_classes_of

__all__ = ["EpochLoop", "EpochSums", "TrainingDiverged"]


# Without a progress bar (stderr not a terminal): a progress line at the first check point after this
# many seconds, unless train.log_every sets a number of steps.
LOG_SECONDS = 30.0


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class EpochSums:
    """Running totals of an epoch, on the device (read at check points and at the end)."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: torch.Tensor
    bad: torch.Tensor        # whether a non-finite loss has been seen
    bad_step: torch.Tensor   # the first such global step (-1: none)
    bad_loss: torch.Tensor   # its loss
    skipped: int = 0         # unreadable samples dropped (host count)
    elapsed: float = 0.0     # seconds this epoch ran before a resume (host), for epoch_time_s

    @classmethod
    def zeros(cls, device) -> "EpochSums":
        z = lambda dtype=torch.float64: torch.zeros((), dtype=dtype, device=device)  # noqa: E731
        return cls(z(), z(), z(), z(torch.bool), z(torch.int64) - 1, z(torch.float32))

    def as_floats(self, running_s: float = 0.0) -> dict:
        """The totals as plain numbers; ``running_s``: the seconds this epoch has run in this call."""
        return {"loss": float(self.loss), "correct": float(self.correct), "seen": float(self.seen),
                "skipped": self.skipped, "elapsed": self.elapsed + running_s}

    @classmethod
    def from_floats(cls, saved: dict, device) -> "EpochSums":
        sums = cls.zeros(device)
        sums.loss += saved["loss"]
        sums.correct += saved["correct"]
        sums.seen += saved["seen"]
        sums.skipped = int(saved.get("skipped", 0))
        sums.elapsed = float(saved.get("elapsed", 0.0))
        return sums


class EpochLoop:
    """The stages 4 to 6 of a :class:`~.trainer.Trainer` (which holds the state they use):
    :meth:`train_epoch`, :meth:`finish_epoch`, :meth:`checkpoint`."""

    # -- stage 4: one epoch -------------------------------------------------------
    def train_epoch(self, sums: EpochSums | None) -> tuple[EpochSums, bool]:
        """Train the current epoch from batch ``self.batch``; ``(totals, stopped)``."""
        ctx, t = self.ctx, self.cfg.train
        device, epoch = self.device, self.epoch
        sums = sums or EpochSums.zeros(device)
        self.sampler.set_epoch(epoch, self.batch)
        self.net.train()
        self.tic = time.perf_counter()
        self.timed_from = self.batch
        next_save = self._next_checkpoint(self.batch)
        bar = progress_bar(self.train_loader, f"epoch {epoch + 1}/{t.epochs}", t.progress and ctx.is_main,
                           self.steps_per_epoch - self.batch)
        # no bar where stderr is not a terminal (nohup, a batch scheduler): a line now and then instead
        lines = t.progress and ctx.is_main and (bar is self.train_loader or bar.disable)
        self.logged = time.monotonic()
        for x, y, skipped in bar:
            if self.batch >= self.steps_per_epoch:
                break
            sums.skipped += skipped
            self.train_step(x.to(device, non_blocking=True), y.to(device, non_blocking=True), sums)
            self.step += 1
            self.batch += 1
            checking = self.batch % t.check_every == 0
            if checking:
                self._check(sums)
                self._watch_throughput()
                if bar is not self.train_loader and not bar.disable:
                    bar.set_postfix(**self._progress(sums))
            if lines and (self.batch % t.log_every == 0 if t.log_every else
                          checking and time.monotonic() - self.logged >= LOG_SECONDS):
                self._log_line(sums)
            if self.batch < self.steps_per_epoch and self._stop_requested(checking):
                self._check(sums)
                self.checkpoint(sums)
                raise self._preempted()
            if self.batch < self.steps_per_epoch and self.stop_at_step is not None and self.step >= self.stop_at_step:
                self._check(sums)
                self.checkpoint(sums)
                break
            if next_save is not None and self.batch < self.steps_per_epoch and self._due(next_save):
                self._check(sums)
                self.checkpoint(sums)
                next_save = self._next_checkpoint(self.batch)
        if bar is not self.train_loader:
            bar.close()
        self._check(sums)
        return sums, self.batch < self.steps_per_epoch

    def train_step(self, x: torch.Tensor, y: torch.Tensor, sums: EpochSums) -> None:
        """One optimiser step on a batch (mixed as its seed says), its loss and correct count added
        to ``sums`` on the device: no host synchronisation here."""
        cfg, t = self.cfg, self.cfg.train
        rng = np.random.default_rng(sample_seed(t.seed, self.ctx.rank, self.epoch, self.batch))
        xm, mix = self.mixer.mix(x, y, rng)
        with autocast_context(self.device, t.amp):
            steps = step_logits(self.net, xm, spiking=isinstance(self.model, SpikingNet))
        logits = steps.mean(0)
        loss = self.loss_fn(steps, self.mixer.targets(mix, steps.shape[-1]))
        if self.custom_loss:
            check_loss(loss, self.loss_fn)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        loss = loss.detach()
        bad_now = ~torch.isfinite(loss)
        sums.bad_step = torch.where(bad_now & (sums.bad_step < 0), self.step + 1, sums.bad_step)
        sums.bad_loss = torch.where(bad_now & ~sums.bad, loss.float(), sums.bad_loss)
        sums.bad |= bad_now
        sums.loss += loss.double() * len(y)
        sums.correct += (logits.detach().argmax(1) == y).sum()
        sums.seen += len(y)

    def _stop_requested(self, at_check_point: bool) -> bool:
        """Whether a stop signal arrived (on any rank: under DDP only asked at check points, where
        the ranks meet anyway; alone, a Python attribute, every step)."""
        if not self.ctx.distributed:
            return self.stop.requested
        if not at_check_point:
            return False
        flag = torch.tensor([float(self.stop.requested)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def _preempted(self) -> TrainingPreempted:
        signum = self.stop.signum if self.stop.signum is not None else signal.SIGTERM
        epochs = self.cfg.train.epochs
        where = f"batch {self.batch}/{self.steps_per_epoch} of epoch {self.epoch + 1}/{epochs}" if self.batch \
            else f"epoch {self.epoch}/{epochs}"
        return TrainingPreempted(f"stopped by {signal.Signals(signum).name} after {where}: checkpointed in "
                                 f"{self.run_folder.path / 'last.pt'}",
                                 signum=signum, epoch=self.epoch, step=self.step)

    def _watch_throughput(self, samples_per_s: float | None = None) -> None:
        """Feed the throughput since the last check point (or an epoch's) to the watch, which says
        once when it collapses (a neighbour taking a core the threads wait for)."""
        now = time.perf_counter()
        if samples_per_s is None:
            start, first = self.watched
            if start < self.tic:  # a new epoch: count from its start
                start, first = self.tic, self.timed_from
            samples_per_s = (self.batch - first) * self.cfg.data.batch_size / max(now - start, 1e-9)
            self.watched = (now, self.batch)
        hint = self.watch.add(samples_per_s)
        if hint:
            say(self.ctx, hint)

    def _progress(self, sums: EpochSums) -> dict:
        """The running loss and accuracy of the epoch (a resumed one's restored totals included),
        and the images per second (all ranks) since this process took the epoch up: a resume in
        the middle of an epoch counts only the batches it trained itself."""
        seen = max(float(sums.seen), 1.0)
        timed = (self.batch - self.timed_from) * self.cfg.data.batch_size
        return {"loss": f"{float(sums.loss) / seen:.3f}", "acc": f"{float(sums.correct) / seen:.3f}",
                "img_s": f"{timed / max(time.perf_counter() - self.tic, 1e-9):.0f}"}

    def _log_line(self, sums: EpochSums) -> None:
        """One progress line on stderr (what the bar shows, for logs)."""
        p, t = self._progress(sums), self.cfg.train
        elapsed = time.perf_counter() - self.tic
        left = elapsed / max(self.batch - self.timed_from, 1) * (self.steps_per_epoch - self.batch)
        so_far = elapsed + sums.elapsed  # (the time before a resume included)
        print(f"epoch {self.epoch + 1}/{t.epochs} step {self.batch}/{self.steps_per_epoch}: train loss {p['loss']} "
              f"acc {float(p['acc']):.2%} | {p['img_s']} img/s | epoch {so_far:.0f} s, about {left:.0f} s left",
              file=sys.stderr, flush=True)
        self.logged = time.monotonic()

    def _next_checkpoint(self, batch: int):
        """When the next mid-epoch checkpoint is due: a batch number or a time (``None``: off)."""
        rule = self.checkpoint_rule
        if rule is None:
            return None
        if rule[0] == "steps":
            return ("batch", (batch // rule[1] + 1) * rule[1])
        # a duration: rank 0's clock decides, every rank follows at the same batch
        return ("time", time.monotonic() + rule[1])

    def _due(self, when) -> bool:
        kind, value = when
        if kind == "batch":
            return self.batch >= value
        if self.batch % self.cfg.train.check_every:
            return False  # (time is looked at only at the check points, where ranks agree anyway)
        due = torch.tensor([float(time.monotonic() >= value)], device=self.device)  # NCCL needs it on the GPU
        if self.ctx.distributed:
            dist.broadcast(due, 0)
        return bool(due.item())

    def _check(self, sums: EpochSums) -> None:
        """Raise :class:`TrainingDiverged` when a loss was not finite (on any rank)."""
        flag = sums.bad.float().reshape(1)
        if self.ctx.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if not bool(flag.item()):
            return
        step = int(sums.bad_step)
        where = f"step {step}" if step > 0 else "a step on another rank"
        raise TrainingDiverged(f"the loss became {float(sums.bad_loss)} at epoch {self.epoch + 1}, {where}; "
                               f"{self._last_good()} -- lower optim.lr or set optim.grad_clip")

    def _last_good(self) -> str:
        last = self.run_folder.path / "last.pt"
        return f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"

    # -- stage 5: the end of an epoch ---------------------------------------------
    def finish_epoch(self, sums: EpochSums) -> None:
        cfg, ctx = self.cfg, self.ctx
        train_time = time.perf_counter() - self.tic
        loss_sum, correct, seen, skipped = ddp.all_reduce_sum(
            [float(sums.loss), float(sums.correct), float(sums.seen), float(sums.skipped)], ctx)
        timed = (self.batch - self.timed_from) * cfg.data.batch_size
        test = evaluate(self.model, self.test_loader, self.device, amp=cfg.train.amp, ctx=ctx,
                        progress=cfg.train.progress)
        self.epoch += 1
        self.batch = 0
        record = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                  "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "test_loss": test["loss"], "test_acc": test["acc"], "test_acc_per_step": test["acc_per_step"],
                  "firing_rates": test["firing_rates"], **({"sa_gates": test["sa_gates"]} if "sa_gates" in test else {}),
                  "train_samples_per_s": timed / train_time, "epoch_time_s": time.perf_counter() - self.tic + sums.elapsed}
        if skipped:
            record["skipped_samples"] = int(skipped)
            say(ctx, f"epoch {self.epoch}: skipped {int(skipped)} unreadable sample(s) "
                      f"(data.options.skip_bad_files)")
        self.history.append(record)
        if self.timed_from == 0:  # a whole epoch timed (not one resumed in its middle)
            self._watch_throughput(record["train_samples_per_s"])
        best = max(h["test_acc"] for h in self.history)
        self.checkpoint(None, best=record["test_acc"] >= best)
        if ctx.is_main:
            if self.writer is not None:
                for k in ("lr", "train_loss", "train_acc", "test_loss", "test_acc", "train_samples_per_s"):
                    self.writer.add_scalar(k, record[k], self.epoch)
                for name, rate in record["firing_rates"].items():
                    self.writer.add_scalar(f"firing_rate/{name}", rate, self.epoch)
                self.writer.flush()
            for callback in self.callbacks:
                callback(record)
            # the epoch's line, whatever train.progress says (which switches the bars and progress lines off)
            split = eval_split(cfg.data.options)
            print(f"epoch {self.epoch}/{cfg.train.epochs}: train loss {record['train_loss']:.4f} "
                  f"acc {record['train_acc']:.2%} | {split} loss {record['test_loss']:.4f} "
                  f"acc {record['test_acc']:.2%} (best {best:.2%}) | {record['train_samples_per_s']:.0f} img/s",
                  file=sys.stderr)

    # -- stage 6: checkpoints -----------------------------------------------------
    def checkpoint(self, sums: EpochSums | None, *, best: bool = False) -> None:
        """Write ``last.pt`` (and ``best.pt``): at an epoch end (``sums`` None), or in the middle of
        one with the running totals, to resume at the same batch. Never from non-finite weights."""
        ctx = self.ctx
        finite = torch.stack([p.detach().isfinite().all() for p in self.model.parameters()]).all().float().reshape(1)
        if ctx.distributed:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not bool(finite.item()):
            raise TrainingDiverged(f"the weights became non-finite in epoch {self.epoch + (sums is not None)} "
                                   f"(by step {self.step}, the loss still finite); {self._last_good()} "
                                   f"-- lower optim.lr or set optim.grad_clip")
        rngs, totals = [rng_state()], [sums.as_floats(time.perf_counter() - self.tic) if sums is not None else {}]
        if ctx.distributed:
            gathered, gathered_sums = [None] * ctx.world_size, [None] * ctx.world_size
            dist.all_gather_object(gathered, rngs[0])
            dist.all_gather_object(gathered_sums, totals[0])
            rngs, totals = gathered, gathered_sums
        if not ctx.is_main:
            return
        payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rngs,
                   "epoch": self.epoch, "batch": self.batch, "step": self.step, "history": self.history,
                   "config": self.cfg.to_dict(), "num_classes": num_classes_of(self.model), "staa_snn": __version__,
                   "input": input_metadata(self.cfg, self.classes, self.sensor),
                   "partial_batch": self.keep_partial}
        if self.user_model is not None:
            payload["python_model"] = self.user_model_name
        if sums is not None:
            payload["sums"] = totals
        folder = self.run_folder
        save_checkpoint(folder.path / "last.pt", payload)
        if best:
            save_checkpoint(folder.path / "best.pt", payload)
        if sums is None:
            folder.write_metrics(self.history)
