"""Spawned data workers run with one BLAS/OpenMP thread each (rstg_tf.data.workers)."""

import os
import signal
import subprocess
import sys
import time

import pytest

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


def _children(pid):
    """Pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_IN_MEMORY = """
import numpy as np
from rstg_tf.data.syncmnist_arrays import make_videos
rng = np.random.default_rng(0)
images = rng.integers(0, 255, (3000, 28, 28), dtype=np.uint8)
labels = np.arange(3000) % 10
make_videos(images, labels, "train", 30000, workers=2)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to find the workers")
@pytest.mark.parametrize("program", ["shards", "in_memory"])
def test_workers_exit_when_their_parent_is_killed(tmp_path, program):
    """kill -9 of the parent: its spawned workers are gone within seconds."""
    from tests.helpers import ROOT

    if program == "shards":
        args = ["-m", "train.make_syncmnist", "--digits=3", "--split=train", "--workers=2",
                f"--output_dir={tmp_path}", "--num_videos=200000", "--num_shards=80"]
    else:
        args = ["-c", _IN_MEMORY]
    parent = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": ROOT})
    try:
        deadline = time.time() + 120
        workers = []
        while time.time() < deadline and parent.poll() is None:
            # The pool's workers (and, for ProcessPoolExecutor, the resource tracker).
            workers = [p for p in _children(parent.pid) if _alive(p)]
            if len(workers) >= 2:
                time.sleep(3)          # let them start generating
                break
            time.sleep(0.2)
        assert parent.poll() is None and len(workers) >= 2, "the workers never started"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 15
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        left = [p for p in workers if _alive(p)]
        for p in left:
            os.kill(p, signal.SIGKILL)
        assert not left, f"workers {left} outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
