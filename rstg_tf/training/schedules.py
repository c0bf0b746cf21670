"""Learning-rate schedules of a training run (``--lr_schedule``), as Keras callbacks.

* ``plateau`` (the reference's): the rate is divided by 10 when the validation loss has
  not improved for ``plateau_patience`` epochs (Keras' ``ReduceLROnPlateau``), never below
  ``min_lr``.
* ``constant``: the peak rate throughout.
* ``cosine``: the peak rate, then a half cosine down to ``min_lr`` over the last
  ``cosine_fraction`` of the run's steps (1.0: a plain cosine after the warm-up).

Every schedule may start with ``warmup_steps`` of a linear ramp from ``peak /
warmup_steps`` to the peak. The rate of step ``s`` (counted from the first epoch, a
resumed run's steps included) is ``LearningRateCurve(...)(s)``; ``ScheduledLearningRate``
writes it into the optimizer's learning-rate variable before each compiled call
(``steps_per_execution`` steps), which Keras' own schedule objects cannot do together
with ``ReduceLROnPlateau`` (a plateau needs the rate to be a variable).

A cosine run's length is ``epochs x steps_per_epoch``; a run under a time limit
(``max_train_minutes``) that will not get that far re-estimates its length after every
epoch from the epochs' pace, as ``TimeLimit`` decides, so its decay still ends at the
floor when the limit stops it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Optional

import keras

from rstg_tf.config import LR_SCHEDULES


@dataclasses.dataclass(frozen=True)
class LearningRateCurve:
    """The learning rate as a function of the step (0-based), for every schedule.

    Args:
      peak: the rate after the warm-up.
      warmup_steps: steps of the linear ramp up to ``peak`` (0: none).
      total_steps: cosine only: the run's steps; its last step (``total_steps - 1``)
        trains at ``min_lr`` (None: constant after the warm-up, as for plateau and
        constant).
      cosine_fraction: share of the steps after the warm-up spent in the cosine decay.
      min_lr: the cosine's floor.
    """

    peak: float
    warmup_steps: int = 0
    total_steps: Optional[int] = None
    cosine_fraction: float = 1.0
    min_lr: float = 0.0

    def decay_start(self) -> Optional[int]:
        """The first step of the cosine decay (None without one)."""
        if self.total_steps is None:
            return None
        span = max(self.total_steps - self.warmup_steps, 0)
        return self.total_steps - int(round(self.cosine_fraction * span))

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        start = self.decay_start()
        if start is None or step < start:
            return self.peak
        last = self.total_steps - 1            # the run's last step trains at the floor
        if step >= last:
            return self.min_lr
        progress = (step - start) / (last - start)
        return self.min_lr + 0.5 * (self.peak - self.min_lr) * (1 + math.cos(math.pi * progress))


def set_learning_rate(model: keras.Model, value: float) -> None:
    """Sets the optimizer's rate from a callback, so that the next compiled call uses it.

    Under JAX, ``fit`` keeps the variables' values in its own state during an epoch and
    reads them back only when a callback has synced that state (``jax_state_sync``, the
    trainer's public way for callbacks to touch variables); under TensorFlow the variable
    is read inside the step.
    """
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
    model.optimizer.learning_rate = value


class ScheduledLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's rate to ``curve(step)`` before every compiled call.

    With ``owns_rate=False`` (the plateau schedule) it acts during the warm-up only and
    then leaves the rate to ``ReduceLROnPlateau``. With ``time_limit_minutes`` (the run's
    ``TimeLimit``) a cosine curve's ``total_steps`` is re-estimated after each epoch but
    a fit's first (which includes compiling the step): the epochs that will still begin
    are those that, at the last epoch's pace, end inside the limit. Adds ``lr_total_steps`` (the length the cosine is aiming at) to the epoch logs.

    Args:
      curve: the ``LearningRateCurve``; for cosine its ``total_steps`` is the planned
        ``epochs x steps_per_epoch``.
      steps_per_epoch: fit's steps per epoch.
      owns_rate: False for plateau (warm-up only).
      time_limit_minutes: the run's time limit, or None.
      clock: seconds as a float (tests pass a fake one).
    """

    def __init__(self, curve: LearningRateCurve, steps_per_epoch: int, owns_rate: bool = True,
                 time_limit_minutes: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.curve, self.steps_per_epoch, self.owns_rate = curve, steps_per_epoch, owns_rate
        self.planned_total = curve.total_steps
        self.limit = None if time_limit_minutes is None else 60.0 * time_limit_minutes
        self.clock = clock
        self._epoch, self._last, self._first_epoch = 0, None, None
        self._start = self._epoch_start = 0.0

    def on_train_begin(self, logs=None):
        self._start, self._last, self._first_epoch = self.clock(), None, None
        self.curve = dataclasses.replace(self.curve, total_steps=self.planned_total)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._epoch, self._epoch_start = epoch, self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        step = self._epoch * self.steps_per_epoch + batch
        if not self.owns_rate and step >= self.curve.warmup_steps and \
                self._last in (None, self.curve.peak):
            return      # warm-up over (or a resumed run past it): the plateau's rate stands
        value = self.curve(step)
        if value != self._last:
            set_learning_rate(self.model, value)
            self._last = value

    def on_epoch_end(self, epoch, logs=None):
        # A fit's first epoch includes compiling the step: its pace says little.
        first = epoch == self._first_epoch
        if self.limit is not None and self.planned_total is not None and not first:
            now = self.clock()
            pace = now - self._epoch_start
            more = int((self.limit - (now - self._start)) // pace) if pace > 0 else 0
            done = (epoch + 1) * self.steps_per_epoch
            total = min(self.planned_total, done + max(more, 0) * self.steps_per_epoch)
            self.curve = dataclasses.replace(self.curve, total_steps=max(total, done))
        if logs is not None and self.owns_rate and self._last is not None:
            logs["learning_rate"] = self._last
        if logs is not None and self.curve.total_steps is not None:
            logs["lr_total_steps"] = self.curve.total_steps


def schedule_callbacks(schedule: str, curve: LearningRateCurve, steps_per_epoch: int,
                       plateau_patience: int, time_limit_minutes: Optional[float] = None
                       ) -> list:
    """The callbacks of ``schedule``: [ScheduledLearningRate] and, for plateau,
    ReduceLROnPlateau (/10 on ``val_loss``, floor ``curve.min_lr``)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}; got {schedule!r}.")
    if schedule == "plateau":
        callbacks = [keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.1, patience=plateau_patience, min_lr=curve.min_lr)]
        if curve.warmup_steps:
            callbacks.insert(0, ScheduledLearningRate(curve, steps_per_epoch, owns_rate=False))
        return callbacks
    if schedule == "constant":
        curve = dataclasses.replace(curve, total_steps=None)
    return [ScheduledLearningRate(curve, steps_per_epoch,
                                  time_limit_minutes=time_limit_minutes)]
