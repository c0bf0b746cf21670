"""tf.data input pipeline over video shards (generic; SyncMNIST is one user).

``split_files`` (``rstg_tf.data.manifest``) reads a shard directory's ``manifest.json``;
``video_dataset`` lists the
shards, interleaves them in parallel, parses and decodes clips (``video_records``),
shuffles when training, batches and prefetches. ``array_dataset`` batches in-memory
arrays and ``generator_dataset`` prefetches a Python generator's batches for ``model.fit``
without the stalls of Keras' own pipelines for arrays and PyDatasets.

Corrupt shards. When the manifest gives each shard's record count, every shard is read to
its end and its count checked: a truncated or corrupt shard stops the input with an error
naming the file and the first record it could not read (``on_corrupt='raise'``; the
programs print it as one ``error:`` line, exit 2), or the records it could read are kept
and the loss is counted once per shard in a ``CorruptRecords`` (``on_corrupt='skip'``; the
programs print one total at the end). TF's reader cannot resynchronise inside an
uncompressed TFRecord file: everything after the first bad record of a shard is lost,
not only that record.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import tensorflow as tf

from rstg_tf.data import shards
from rstg_tf.data.manifest import split_files  # noqa: F401 (pipeline.split_files)
from rstg_tf.data.video_records import VideoRecordSpec, parse_video

AUTOTUNE = tf.data.AUTOTUNE
ON_CORRUPT = ("raise", "skip")
# Appended to each shard's records to count them at its end; not a valid SequenceExample.
_END_OF_SHARD = b"\xff\xffrstg-tf:end-of-shard"


def _compression_of(path: str) -> str:
    for compression, suffix in shards.COMPRESSION_SUFFIX.items():
        if suffix and path.endswith(suffix):
            return compression
    return ""


CORRUPT_SHARD = "corrupt or truncated shard"


class CorruptRecords:
    """Records lost to corrupt or truncated shards under ``on_corrupt='skip'``: per shard
    file, however many epochs read it (a table keyed by path, not a running sum)."""

    def __init__(self):
        self.table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1)

    def record(self, path: tf.Tensor, lost: tf.Tensor) -> tf.Operation:
        return self.table.insert(tf.reshape(path, [1]), tf.reshape(lost, [1]))

    def counts(self) -> Dict[str, int]:
        keys, values = self.table.export()
        return {k.decode(): int(v) for k, v in zip(keys.numpy(), values.numpy())}

    def summary(self) -> Optional[str]:
        """'skipped N unreadable records in K shard files (...)', or None."""
        counts = self.counts()
        if not counts:
            return None
        names = ", ".join(f"{os.path.basename(k)} ({v})" for k, v in sorted(counts.items()))
        return (f"skipped {sum(counts.values())} unreadable records in {len(counts)} shard "
                f"files: {names} (TF's reader loses everything after a shard's first bad "
                f"record)")


def _checked_records(path: tf.Tensor, expected: tf.Tensor, compression: str,
                     on_corrupt: str, corrupt: Optional[CorruptRecords]) -> tf.data.Dataset:
    """The records of one shard, read to the end and counted against ``expected``."""
    records = tf.data.TFRecordDataset(path, compression_type=compression,
                                      buffer_size=1 << 20).ignore_errors()
    marked = records.concatenate(tf.data.Dataset.from_tensors(tf.constant(_END_OF_SHARD)))

    def count(n, record):
        return n + 1, (record, n)

    def keep(record, n):
        """False for the end marker, after checking the count there."""
        is_end = tf.equal(record, _END_OF_SHARD)
        ok = tf.logical_or(tf.logical_not(is_end), tf.equal(n, expected))
        if on_corrupt == "raise":
            checks = [tf.debugging.Assert(ok, [
                CORRUPT_SHARD, path, "read", n, "of", expected, "records"])]
        elif corrupt is not None:
            def count_lost():
                with tf.control_dependencies([corrupt.record(path, expected - n)]):
                    return tf.constant(True)

            checks = [tf.cond(ok, lambda: tf.constant(True), count_lost)]
        else:
            checks = []
        with tf.control_dependencies(checks):
            return tf.logical_not(is_end)

    return marked.scan(tf.constant(0, tf.int64), count).filter(keep)


def video_dataset(files: Sequence[str], spec: VideoRecordSpec, *, batch_size: Optional[int],
                  training: bool = False, counts: Optional[Sequence[int]] = None,
                  shuffle_buffer: int = 2048, seed: Optional[int] = None,
                  deterministic: Optional[bool] = None, repeat: bool = False,
                  on_corrupt: str = "raise", corrupt: Optional[CorruptRecords] = None,
                  cycle_length: int = 8, drop_remainder: Optional[bool] = None,
                  map_fn: Optional[Callable[[Dict[str, tf.Tensor]], object]] = None,
                  autotune: bool = False) -> tf.data.Dataset:
    """A dataset of parsed clips (dicts from ``parse_video``, or ``map_fn`` of them).

    Args:
      files: shard paths (compression from the suffix: .gz GZIP, .zz ZLIB, else none).
      spec: the record spec.
      batch_size: batch size, or None for single clips.
      training: shuffle shards and clips, and drop the last partial batch.
      counts: per-shard record counts (from the manifest) to detect truncated shards.
      shuffle_buffer: clips in the shuffle buffer (training).
      seed: seed for the shuffles; with it (or ``deterministic=True``) the order is fixed.
      deterministic: keep element order (default: not training, or a seed is given).
      repeat: repeat forever (after the shuffles, so every epoch reshuffles).
      on_corrupt: 'raise' (error naming the shard) or 'skip' (keep readable records).
      corrupt: with 'skip', counts the records lost per shard (``CorruptRecords``).
      cycle_length: shards read at once.
      drop_remainder: default: ``training``.
      map_fn: applied to each parsed clip before batching (e.g. to (frames, label)).
      autotune: run tf.data's autotuning model. Off by default: deleting an iterator
        waits for that model's thread, up to its optimisation period (which grows to a
        minute), and Keras 3 deletes the validation iterator at every epoch's validation,
        so epochs on 2 cores stalled for up to ~40 s (docs/performance.md). Without it,
        AUTOTUNE parallelism stays at min(16, CPU cores) and prefetch buffers still adapt.
    """
    if on_corrupt not in ON_CORRUPT:
        raise ValueError(f"on_corrupt must be one of {ON_CORRUPT}; got {on_corrupt!r}.")
    files = [str(f) for f in files]
    if not files:
        raise ValueError("no shard files given.")
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise FileNotFoundError(f"shard {missing[0]} does not exist.")
    compressions = {_compression_of(f) for f in files}
    if len(compressions) > 1:
        raise ValueError(f"shards mix compressions {sorted(compressions)}.")
    compression = compressions.pop()
    if counts is not None and len(counts) != len(files):
        raise ValueError(f"{len(counts)} counts for {len(files)} shards.")
    if deterministic is None:
        deterministic = not training or seed is not None
    drop_remainder = training if drop_remainder is None else drop_remainder

    counts = [-1] * len(files) if counts is None else [int(c) for c in counts]
    sources = tf.data.Dataset.from_tensor_slices((files, tf.constant(counts, tf.int64)))
    if training:
        sources = sources.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def open_shard(path, expected):
        if counts[0] < 0:
            records = tf.data.TFRecordDataset(path, compression_type=compression,
                                              buffer_size=1 << 20)
            return records.ignore_errors(log_warning=True) if on_corrupt == "skip" else records
        return _checked_records(path, expected, compression, on_corrupt, corrupt)

    data = sources.interleave(open_shard, cycle_length=min(cycle_length, len(files)),
                              block_length=1, num_parallel_calls=AUTOTUNE,
                              deterministic=deterministic)
    if training:
        data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()

    def parse(serialized, *unused_count_fields):
        parsed = parse_video(spec, serialized)
        return map_fn(parsed) if map_fn is not None else parsed

    data = data.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if on_corrupt == "skip":
        data = data.ignore_errors(log_warning=True)
    if batch_size:
        data = data.batch(batch_size, drop_remainder=drop_remainder)
    return data.prefetch(AUTOTUNE).with_options(_options(autotune))


def _options(autotune: bool, default_optimizations: bool = True) -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = autotune
    options.experimental_optimization.apply_default_optimizations = default_optimizations
    return options


def array_dataset(arrays: Tuple, batch_size: int, *, shuffle_seed: Optional[int] = None
                  ) -> tf.data.Dataset:
    """Batches of in-memory arrays, e.g. ``(frames, labels)``, for ``fit`` / ``evaluate``.

    What Keras builds for NumPy arrays, less its tf.data autotuning model: deleting an
    epoch's iterator waits for that model's thread (``video_dataset``'s ``autotune``), which
    stalled backbone pretraining on 2 cores for 10-48 s at random epoch starts. As in Keras,
    the arrays are gathered batch by batch, the last batch may be partial, and tf.data's
    default graph rewrites are off (they would serialise the arrays with the pipeline).

    Args:
      arrays: a tuple of arrays with the same first dimension.
      batch_size: clips per batch.
      shuffle_seed: with it, every pass is a fresh permutation (seeded); without, in order.
    """
    count = len(arrays[0]) if arrays else 0
    if not count or any(len(a) != count for a in arrays):
        raise ValueError(f"arrays must be non-empty and of one length; got lengths "
                         f"{[len(a) for a in arrays]}.")
    indices = tf.data.Dataset.range(count)
    if shuffle_seed is not None:
        indices = indices.shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=True)
    tensors = tf.data.Dataset.from_tensors(tuple(tf.convert_to_tensor(a) for a in arrays))
    data = tf.data.Dataset.zip((indices.batch(batch_size), tensors.repeat()))
    data = data.map(lambda i, t: tuple(tf.gather(a, i) for a in t), num_parallel_calls=AUTOTUNE)
    return data.prefetch(AUTOTUNE).with_options(_options(False, default_optimizations=False))


def generator_dataset(generator: Callable[[], Iterator[Tuple]], example: Tuple
                      ) -> tf.data.Dataset:
    """The batches ``generator()`` yields, made by a tf.data thread ahead of the step.

    What Keras builds for a ``keras.utils.PyDataset`` read by one worker, less its tf.data
    autotuning model (``array_dataset``). ``example``: one batch, whose shapes and dtypes
    every batch has.
    """
    signature = tuple(tf.TensorSpec(a.shape, tf.as_dtype(a.dtype)) for a in example)
    data = tf.data.Dataset.from_generator(generator, output_signature=signature)
    return data.prefetch(AUTOTUNE).with_options(_options(False))
