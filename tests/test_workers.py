"""Spawned data workers run with one BLAS/OpenMP thread each (rstg_tf.data.workers)."""

import os

from rstg_tf.data.workers import THREAD_VARIABLES, single_threaded_children, spawn_context


def _thread_settings(_):
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


def test_spawned_workers_get_one_thread_and_the_parent_keeps_its_settings(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with single_threaded_children(), spawn_context().Pool(2) as pool:
        seen = pool.map(_thread_settings, range(2))
    assert seen == [dict.fromkeys(THREAD_VARIABLES, "1")] * 2
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "OPENBLAS_NUM_THREADS" not in os.environ
