"""Writing a split as TFRecord shards: atomic, resumable, parallel, with a manifest.

A split of ``num_records`` records is cut into contiguous shards
``{split}-{i:05d}-of-{S:05d}.tfrecord[.gz|.zz]``. Workers (``spawn``ed processes) write
each shard under a temporary name; the parent records the shard's count, class histogram and
SHA-256 in ``manifest.json`` and only then renames it into place. A re-run with the same
settings keeps every shard whose file and manifest entry agree and makes the rest, so a
killed run loses at most the shards in flight; nothing half-written ever has a final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
from concurrent import futures
import os
import queue
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import tensorflow as tf

from rstg_tf.data.atomic import atomic_write_text
from rstg_tf.data.manifest import FORMAT, MANIFEST, read_manifest  # noqa: F401 (shards.*)
from rstg_tf.data.workers import exit_with_parent, single_threaded_children, spawn_context

COMPRESSION_SUFFIX = {"GZIP": ".gz", "ZLIB": ".zz", "NONE": ""}


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """One shard to write: records ``first .. first + count - 1``."""

    index: int
    first: int
    count: int
    path: str


def shard_name(split: str, index: int, num_shards: int, compression: str) -> str:
    if compression not in COMPRESSION_SUFFIX:
        raise ValueError(f"compression must be one of {sorted(COMPRESSION_SUFFIX)}; got "
                         f"{compression!r}.")
    return (f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"
            f"{COMPRESSION_SUFFIX[compression]}")


def shard_ranges(num_records: int, num_shards: int) -> List[Tuple[int, int]]:
    """Contiguous (first, count) ranges, sizes differing by at most one."""
    if num_records < 1 or not 1 <= num_shards <= num_records:
        raise ValueError(f"need 1 <= num_shards ({num_shards}) <= num_records "
                         f"({num_records}).")
    base, extra = divmod(num_records, num_shards)
    ranges, first = [], 0
    for i in range(num_shards):
        count = base + (i < extra)
        ranges.append((first, count))
        first += count
    return ranges


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def temp_path(path: str) -> str:
    return f"{path}.tmp-{os.getpid()}"


def write_records(path: str, records: Iterable[bytes], compression: str) -> str:
    """Writes records to ``path`` (not atomically: callers pass a temporary name)."""
    options = tf.io.TFRecordOptions(compression_type="" if compression == "NONE"
                                    else compression)
    with tf.io.TFRecordWriter(path, options=options) as writer:
        for record in records:
            writer.write(record)
    return path


@contextlib.contextmanager
def manifest_lock(directory: str):
    with open(os.path.join(directory, ".manifest.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_split(directory: str, split: str, update: Callable[[dict], dict]) -> dict:
    """Read-modify-writes one split's manifest entry under a file lock."""
    with manifest_lock(directory):
        manifest = read_manifest(directory) or {"format": FORMAT, "splits": {}}
        manifest["splits"][split] = update(manifest["splits"].get(split))
        atomic_write_text(os.path.join(directory, MANIFEST),
                          json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return manifest["splits"][split]


# ---------------------------------------------------------------------------------------
# Parallel shard production.

_REPORT_QUEUE = None


def _init_worker(parent_pid: int, report_queue) -> None:
    global _REPORT_QUEUE
    exit_with_parent(parent_pid)
    _REPORT_QUEUE = report_queue
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _report(count: int) -> None:
    if _REPORT_QUEUE is not None:
        _REPORT_QUEUE.put(count)


def _run_task(job, task: ShardTask) -> Tuple[ShardTask, dict]:
    return task, job(task, _report)


class _Progress:
    """A Keras progress bar over records, showing records/s."""

    def __init__(self, total: int, done: int, unit: str, verbose: bool):
        import keras  # the bar only; imported lazily for NumPy-only callers

        self.unit, self.done, self.start = unit, done, time.time()
        self.fresh = 0
        self.bar = keras.utils.Progbar(total, unit_name=unit,
                                       stateful_metrics=[f"{unit}s/s"]) if verbose else None
        self.update(0)

    def update(self, count: int) -> None:
        self.done += count
        self.fresh += count
        if self.bar is not None:
            rate = self.fresh / max(time.time() - self.start, 1e-9)
            self.bar.update(self.done, values=[(f"{self.unit}s/s", rate)])


def run_jobs(job: Callable, tasks: List[ShardTask], on_done: Callable[[ShardTask, dict], None],
             total: int, done: int = 0, workers: int = 1, unit: str = "record",
             verbose: bool = True) -> float:
    """Runs ``job(task, report)`` for every task; ``on_done`` runs in this process.

    ``job`` must be picklable when ``workers > 1`` (it is sent to spawned processes); it
    calls ``report(n)`` as it makes records. Returns the fresh records' rate (records/s).
    """
    progress = _Progress(total, done, unit, verbose)
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_done(task, job(task, progress.update))
        return progress.fresh / max(time.time() - progress.start, 1e-9)
    context = spawn_context()
    report_queue = context.Queue()
    with single_threaded_children(), futures.ProcessPoolExecutor(
            min(workers, len(tasks)), mp_context=context, initializer=_init_worker,
            initargs=(os.getpid(), report_queue)) as pool:
        pending = {pool.submit(_run_task, job, task) for task in tasks}
        try:
            while pending:
                done_now, pending = futures.wait(pending, timeout=0.2,
                                                 return_when=futures.FIRST_COMPLETED)
                with contextlib.suppress(queue.Empty):
                    while True:
                        progress.update(report_queue.get_nowait())
                for future in done_now:
                    # re-raises a worker's exception; BrokenProcessPool if one died
                    on_done(*future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return progress.fresh / max(time.time() - progress.start, 1e-9)


def remove_stale_temps(directory: str, split: str) -> None:
    for path in glob.glob(os.path.join(directory, f"{split}-*.tmp-*")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def finished_shards(directory: str, entry: Optional[dict]) -> Dict[str, dict]:
    """Shards whose final file exists and matches its manifest checksum."""
    finished = {}
    for name, info in ((entry or {}).get("shards") or {}).items():
        path = os.path.join(directory, name)
        if os.path.exists(path) and file_sha256(path) == info.get("sha256"):
            finished[name] = info
    return finished
