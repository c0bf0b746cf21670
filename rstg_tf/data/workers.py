"""Spawned data-generation workers (pure Python: no TensorFlow or Keras import).

Both generators (``shards`` writing TFRecords, ``syncmnist_arrays`` filling NumPy arrays)
start their workers with ``spawn`` (never a fork of a process running a backend) and with
one BLAS/OpenMP thread each: the SyncMNIST resize is many tiny float64 matrix products,
which a multi-threaded BLAS only slows down, and N workers with N threads each
oversubscribe the cores N-fold. Every worker exits when the process that started it is
gone (``exit_with_parent``): a ``kill -9`` of the parent leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def single_threaded_children():
    """Inside it, spawned processes start with one BLAS/OpenMP thread (the variables are
    read when a child imports NumPy); this process's environment is restored after."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def spawn_context():
    """The ``spawn`` multiprocessing context every worker pool here uses."""
    return multiprocessing.get_context("spawn")


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Call in a worker's initializer: the worker exits (status 1) within ``interval``
    seconds of the death of ``parent_pid``, the process that started it.

    A parent killed with SIGKILL runs no clean-up, so its spawned workers would be
    re-parented and keep generating (and holding their memory) until killed by hand. A
    daemon thread polls ``os.getppid()``, chosen over Linux's ``prctl(PR_SET_PDEATHSIG)``:
    it works on every OS, has no race with a parent that dies before the worker starts
    (the pid is passed in, not read), and does not fire when the parent's *thread* that
    spawned the worker ends (PDEATHSIG does: a pool started from a short-lived thread
    would lose its workers). Its cost: one wake-up per ``interval``. The pool's resource
    tracker exits on its own once the last process holding its pipe is gone.
    """
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()

