"""Spawned data-generation workers (pure Python: no TensorFlow or Keras import).

Both generators (``shards`` writing TFRecords, ``syncmnist_arrays`` filling NumPy arrays)
start their workers with ``spawn`` (never a fork of a process running a backend) and with
one BLAS/OpenMP thread each: the SyncMNIST resize is many tiny float64 matrix products,
which a multi-threaded BLAS only slows down, and N workers with N threads each
oversubscribe the cores N-fold.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os

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
