"""A wall-clock limit for one ``model.fit`` (``--max_train_minutes``); ``train.time_budget``
shares a fixed time among several runs (``python -m train.table --time_budget_minutes``).

Keras has no such callback; TensorFlow Addons' ``TimeStopping`` (end of life) only looked
after each epoch, so one long epoch could overrun its limit by a whole epoch. A lent GPU
machine that is reclaimed after a fixed time returns nothing from a row that has not
finished, which is what the table's budget uses it for, besides plain "train for at most
two hours" runs.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import keras


class TimeLimit(keras.callbacks.Callback):
    """Ends ``model.fit`` within about ``minutes`` of its start.

    With ``t`` the time since ``fit`` began, ``e`` the last epoch's length and ``v`` the
    longest time an epoch has taken from its last batch to its end (validation and the
    other callbacks' checkpoints; 0 until an epoch has ended):

    * after each epoch, fit stops when ``t + e > limit``: the next epoch would not end in
      time, so none is begun;
    * after each batch, fit stops when ``t + v > limit`` (an epoch slower than the last, or
      the first one): that epoch ends early, and its validation and checkpoints still run.

    So fit ends about one batch past the limit, or one batch and one validation pass in its
    first epoch. Put it last among the callbacks, so that ``v`` includes the others' work.
    A run with ``BackupAndRestore`` that is started again continues from the epoch it
    stopped after, under a fresh limit (an epoch cut short counts as done).

    With ``pause=True`` only the first rule applies: every epoch runs all its steps, so a
    run paused and resumed trains the same steps as an unbroken one (fit may then end up
    to one epoch past the limit when an epoch is slower than the last).

    After ``fit``: ``stopped`` (bool), ``stopped_epoch`` (0-based; None if not stopped),
    ``cut_short`` (True when the stop came inside an epoch), ``elapsed`` (seconds).

    Args:
      minutes: the limit, > 0.
      pause: stop between epochs only.
      clock: seconds as a float (tests pass a fake one).
    """

    def __init__(self, minutes: float, pause: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.pause = pause
        if not minutes > 0:
            raise ValueError(f"the training time limit must be > 0 minutes; got {minutes}.")
        self.limit = 60.0 * float(minutes)
        self.clock = clock
        self.stopped, self.cut_short = False, False
        self.stopped_epoch: Optional[int] = None
        self.elapsed = 0.0
        self._start = self._epoch_start = self._tail = 0.0
        self._batch_end: Optional[float] = None
        self._epoch = 0

    def _stop(self, cut_short: bool) -> None:
        self.model.stop_training = True
        self.stopped, self.cut_short, self.stopped_epoch = True, cut_short, self._epoch

    def on_train_begin(self, logs=None):
        self._start, self._tail, self._batch_end = self.clock(), 0.0, None
        self.stopped, self.cut_short, self.stopped_epoch = False, False, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_start = epoch, self.clock()

    def on_train_batch_end(self, batch, logs=None):
        self._batch_end = self.clock()
        if not (self.stopped or self.pause) and \
                self._batch_end - self._start + self._tail > self.limit:
            self._stop(cut_short=True)

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        if self._batch_end is not None:
            self._tail = max(self._tail, now - self._batch_end)
        last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 2)
        if not self.stopped and not last and \
                (now - self._start) + (now - self._epoch_start) > self.limit:
            self._stop(cut_short=False)

    def on_train_end(self, logs=None):
        self.elapsed = self.clock() - self._start
        if self.stopped:
            where = "during" if self.cut_short else "after"
            print(f"time limit ({self.limit / 60:g} min) reached: "
                  f"{'paused' if self.pause else 'stopped'} {where} epoch "
                  f"{self.stopped_epoch + 1} of {(self.params or {}).get('epochs', '?')}, "
                  f"{self.elapsed / 60:.1f} min into training"
                  + ("; the same command resumes it." if self.pause else "."), flush=True)
