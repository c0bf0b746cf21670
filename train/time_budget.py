"""A fixed time shared among a sequence of training runs (``python -m train.table
--time_budget_minutes``): each run gets its part as ``--max_train_minutes``
(``time_limit.TimeLimit``). No Keras import: the table's parent process stays light.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Tuple

ROW_SHARE = 0.85        # at most this part of a run's equal share goes to its fit
MIN_ROW_MINUTES = 0.25  # a run that would get less than this is not run


def row_minutes(budget: Optional[float], elapsed: float, rows_left: int,
                overhead: Optional[float] = None) -> Optional[float]:
    """Training minutes for the next of ``rows_left`` runs when all may take ``budget``
    minutes and ``elapsed`` have passed: an equal share of what is left, less the larger of
    ``1 - ROW_SHARE`` of it and ``overhead`` (minutes a run was seen to take beyond its
    limit: start-up, test pass). None without a budget (no limit); 0.0 when that is under
    ``MIN_ROW_MINUTES``."""
    if budget is None:
        return None
    share = (budget - elapsed) / max(rows_left, 1)
    limit = share - max((1 - ROW_SHARE) * share, overhead or 0.0)
    return limit if limit >= MIN_ROW_MINUTES else 0.0


class TimeBudget:
    """Minutes since it was made, and each of a sequence of runs' time limit from them.

    Each run's overhead (its minutes beyond its limit: start-up, the last validation, the
    test pass) is measured when the next run asks for its limit, if that run used all of
    its limit; the largest one seen is kept back from every later share when it is more
    than ``1 - ROW_SHARE`` of it.

    Args:
      budget: minutes for everything (None: no limit).
      clock: seconds as a float.
    """

    def __init__(self, budget: Optional[float], clock: Callable[[], float] = time.monotonic):
        if budget is not None and not budget > 0:
            raise ValueError(f"the time budget must be > 0 minutes; got {budget}.")
        self.budget, self.clock, self.spent = budget, clock, False
        self.overhead: Optional[float] = None
        self._running: Optional[Tuple[float, float]] = None    # (start, limit) in minutes
        self.start = clock()

    def minutes(self) -> float:
        return (self.clock() - self.start) / 60

    def row_limit(self, row: str, rows_left: int) -> Optional[float]:
        """The next run's (``row``'s) time limit in minutes: None without a budget; 0.0,
        said on stdout, when it is not to run: then no later run is either, so that runs
        go in the order given."""
        now = self.minutes()
        if self._running is not None:
            started, limit = self._running
            over = now - started - limit         # <= 0: it ended before its limit
            if over > 0:
                self.overhead = max(self.overhead or 0.0, over)
        limit = 0.0 if self.spent else row_minutes(self.budget, now, rows_left, self.overhead)
        self._running = (now, limit) if limit else None
        if limit == 0.0:
            self.spent = True
            print(f"{row}: not run, the time budget ({self.budget:g} min) is spent "
                  f"({now:.1f} min in).", flush=True)
        elif limit is not None:
            print(f"{row}: training limited to {limit:.2f} min ("
                  + (f"a share among {rows_left} runs, " if rows_left > 1 else "")
                  + f"{now:.1f} min in).", flush=True)
        return limit
