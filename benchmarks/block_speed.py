"""RSTG block speed: scaling in T against naive send and a space-time non-local block,
the send MLP alone (factorised vs per-pair), achieved GFLOP/s against a measured matmul
peak, streaming latency, XLA and precision."""

from __future__ import annotations

import math
import os
import platform
import time
from typing import Callable, Dict

import keras
import numpy as np
import tensorflow as tf

from benchmarks.backend_timing import percentiles_ms, timed
from benchmarks.flops import H, W, non_local_flops, rstg_flops_per_frame
from benchmarks.full_graph import FullSpaceTimeGraph, full_graph_flops
from rstg_tf.config import RSTGConfig
from rstg_tf.layers.non_local import NonLocalBlock
from rstg_tf.layers.rstg import RSTG
from rstg_tf.layers.space_stage import SpaceStage
from rstg_tf.models import dtype_policy


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Dense float32 matmul GFLOP/s on this machine (best of ``repeats``)."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    f = tf.function(lambda: tf.matmul(a, b))
    return 2 * size ** 3 / min(timed(f, repeats, warmup=2)) / 1e9


def _functions(layer, x, trainable=True):
    forward = tf.function(lambda: layer(x, training=False))

    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.cast(layer(x, training=True), tf.float32)))
        return tape.gradient(loss, layer.trainable_variables)

    return forward, tf.function(train_step)


def _variant(name: str, config: RSTGConfig, channels: int):
    if name == "non_local":
        return NonLocalBlock(name="non_local")
    if name == "full_graph":
        return FullSpaceTimeGraph(config, name="full_graph")
    return RSTG(config.replace(factorized_send=(name == "rstg")), name=name)


def scaling(config: RSTGConfig, channels: int, lengths, batches, repeats: int,
            variants=("rstg", "rstg_naive_send", "non_local")) -> Dict:
    """clips/s forward and forward+backward per variant, T and batch; fitted exponents."""
    rows = []
    for variant in variants:
        for batch in batches:
            for t in lengths:
                keras.utils.set_random_seed(0)
                if variant == "non_local":   # T*N positions at the node width
                    x = tf.random.normal((batch, t, 14, 1, config.node_dim))
                    flops = non_local_flops(t, 14, config.node_dim)
                elif variant == "full_graph":  # T*N nodes, all pairs
                    x = tf.random.normal((batch, t, 14, config.node_dim))
                    flops = full_graph_flops(config, t)
                else:
                    x = tf.random.normal((batch, t, H, W, channels))
                    flops = t * rstg_flops_per_frame(
                        config.replace(factorized_send=(variant == "rstg")), channels)
                layer = _variant(variant, config, channels)
                forward, train = _functions(layer, x)
                fwd = float(np.median(timed(forward, repeats)))
                both = float(np.median(timed(train, repeats)))
                rows.append({"variant": variant, "batch": batch, "T": t,
                             "forward_s": fwd, "train_s": both,
                             "forward_clips_per_s": batch / fwd,
                             "train_clips_per_s": batch / both,
                             "forward_gflops": batch * flops / 1e9,
                             "forward_gflop_per_s": batch * flops / fwd / 1e9})
    exponents = {}
    for variant in variants:
        for batch in batches:
            pts = [(r["T"], r["forward_s"]) for r in rows
                   if r["variant"] == variant and r["batch"] == batch]
            if len(pts) >= 2:
                slope = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)
                exponents[f"{variant}/batch{batch}"] = round(float(slope[0]), 3)
    return {"rows": rows, "time_exponent_vs_T": exponents}


def send_only(config: RSTGConfig, frames: int, repeats: int) -> Dict:
    """Forward and forward+backward seconds of the send MLP on ``frames`` graphs of 14
    nodes, factorised first layer vs the reference's per-pair one (same weights)."""
    out = {}
    x = tf.random.normal((frames, 14, config.node_dim))
    for name, factorized in (("factorised", True), ("naive", False)):
        keras.utils.set_random_seed(0)
        space = SpaceStage(config.replace(factorized_send=factorized), name=f"send_{name}")
        space.build(tuple(x.shape))
        forward = tf.function(lambda s=space: s.send(x))

        def train(s=space):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(s.send(x, training=True)))
            return tape.gradient(loss, s.trainable_variables)

        out[f"{name}_forward_s"] = float(np.median(timed(forward, repeats)))
        out[f"{name}_train_s"] = float(np.median(timed(tf.function(train), repeats)))
    out["frames"] = frames
    out["forward_ratio"] = out["naive_forward_s"] / out["factorised_forward_s"]
    out["train_ratio"] = out["naive_train_s"] / out["factorised_train_s"]
    return out


def stream_block(config: RSTGConfig, channels: int, dtype: str) -> RSTG:
    """An RSTG block built for H x W x ``channels`` frames with every weight in ``dtype``."""
    with dtype_policy(dtype):
        block = RSTG(config, name="stream")
        block.build((None, None, H, W, channels))
    return block


def _in_graph_ms(step, frame, state, steps: int, repeats: int = 5) -> float:
    """Median ms per step of ``steps`` online steps chained in one tf.while_loop, one
    step at a time (a loop running steps in parallel would start frame t+1's first stage
    while frame t's later stages run, which a live stream cannot): the step's own
    compute, without the Python call of a tf.function per frame."""
    @tf.function
    def run(s):
        return tf.while_loop(lambda i, _: i < steps,
                             lambda i, s_: (i + 1, step(frame, s_)[1]), (0, s),
                             parallel_iterations=1)[1]  # no overlap of frame t+1 with t

    state = run(state)
    return 1e3 * float(np.median(timed(lambda: run(state), repeats))) / steps


def machine() -> str:
    """The machine, in words, for a results file."""
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, GPUs: "
            f"{len(tf.config.list_physical_devices('GPU'))}")


def _online(block: RSTG) -> Callable:
    """``block.step`` as a function of (frame, state) only."""
    def step(frame, state):
        return block.step(frame, state)
    return step


def streaming_latency(config: RSTGConfig, channels: int, batches, steps: int) -> Dict:
    """Per-frame latency of the online ``step`` (a concrete function), p50 / p95 ms:
    float32 without and with XLA, and with every weight stored in bfloat16 (no XLA).
    ``in_graph_ms``: the same step chained in-graph (no per-frame Python call)."""
    out = {}
    for batch in batches:
        for suffix, xla, dtype in (("", False, "float32"), ("/xla", True, "float32"),
                                   ("/bf16", False, "bfloat16")):
            block = stream_block(config, channels, dtype)
            state = block.initial_state(batch)
            frame = tf.cast(tf.random.normal((batch, H, W, channels)), dtype)
            step = tf.function(_online(block), jit_compile=xla)
            # Called as a concrete function, as a loaded SavedModel's stream_step is: a
            # tf.function's own call adds 0.1-0.25 ms of argument binding per frame.
            step = step.get_concrete_function(frame, state)
            for _ in range(3):
                _, state = step(frame, state)
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                y, state = step(frame, state)
                y.numpy()
                times.append(time.perf_counter() - start)
            out[f"batch{batch}{suffix}"] = percentiles_ms(times)
            if not xla:
                out[f"batch{batch}{suffix}"]["in_graph_ms"] = _in_graph_ms(
                    block.step, frame, state, max(steps // 5, 4))
    return out


def xla_and_precision(config: RSTGConfig, channels: int, batch: int, t: int,
                      repeats: int) -> Dict:
    """Forward+backward seconds: eager-graph vs XLA; float32 vs mixed_bfloat16 (CPU) or
    mixed_float16 (GPU)."""
    results = {}
    gpu = bool(tf.config.list_physical_devices("GPU"))
    policies = ["float32", "mixed_float16" if gpu else "mixed_bfloat16"]
    for policy in policies:
        keras.mixed_precision.set_global_policy(policy)
        try:
            for xla in (False, True):
                keras.utils.set_random_seed(0)
                layer = RSTG(config, name="block")
                x = tf.random.normal((batch, t, H, W, channels))
                layer(x)

                def train_step():
                    with tf.GradientTape() as tape:
                        y = tf.cast(layer(x, training=True), tf.float32)
                        loss = tf.reduce_sum(tf.square(y))
                    return tape.gradient(loss, layer.trainable_variables)

                f = tf.function(train_step, jit_compile=xla)
                try:
                    seconds = float(np.median(timed(f, repeats)))
                except (tf.errors.OpError, ValueError) as e:   # an op XLA cannot compile
                    seconds = None
                    results[f"{policy}/xla={xla}/error"] = str(e).splitlines()[0][:200]
                results[f"{policy}/xla={xla}"] = seconds
        finally:
            keras.mixed_precision.set_global_policy("float32")
    return results


def plot_scaling(results, path):
    """log10 of forward time per frame vs T at batch 1: flat for a cost linear in T,
    rising by log10(2) = 0.3 per doubling of T for a quadratic one. Returns the PNG's
    path, or, where matplotlib is missing (a bare device image), None after one line
    saying why."""
    from rstg_tf import plots

    rows = [r for r in results["scaling"]["rows"] if r["batch"] == 1]
    lengths = sorted({r["T"] for r in rows})
    series = {}
    for r in rows:
        series.setdefault(r["variant"], [float("nan")] * len(lengths))[
            lengths.index(r["T"])] = math.log10(1e3 * r["forward_s"] / r["T"])
    try:
        return plots.line_chart(series, path, "forward time per frame vs clip length T "
                                "(batch 1; flat = linear in T)", x_label="T",
                                y_label="log10 ms / frame", x_values=lengths)
    except ImportError as error:
        print(f"no {os.path.basename(path)}: {error}", flush=True)
        return None
