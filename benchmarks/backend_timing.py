"""Timing helpers that work under the JAX and TensorFlow Keras backends (compile, wait,
gradients through Keras' stateless calls, device and memory figures). TensorFlow is
imported only when it is the active backend."""

from __future__ import annotations

import os
import platform
import time

import numpy as np

REFERENCE_CLIPS = 100 * 600_000        # the reference's schedule: 100 epochs of 600k videos


def _backend():
    import keras
    name = keras.backend.backend()
    if name not in ("jax", "tensorflow"):
        raise ValueError(f"benchmarks.any_backend runs under jax or tensorflow, not {name}.")
    return name


def compiled(fn):
    """``fn`` compiled for the active backend: jax.jit or tf.function."""
    if _backend() == "jax":
        import jax
        return jax.jit(fn)
    import tensorflow as tf
    return tf.function(fn)


def _ready(out):
    """Waits until ``out`` (a nest of tensors) is computed."""
    import keras
    if _backend() == "jax":
        import jax
        return jax.block_until_ready(out)
    for leaf in keras.tree.flatten(out):
        if hasattr(leaf, "numpy"):
            leaf.numpy()
    return out


def timed(fn, repeats: int, warmup: int = 1) -> list:
    """Seconds of each of ``repeats`` calls (after ``warmup`` untimed ones), each waited
    for."""
    for _ in range(warmup):
        _ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _ready(fn())
        times.append(time.perf_counter() - start)
    return times


def percentiles_ms(times) -> dict:
    """p50 / p95 of ``times`` (seconds), in ms."""
    return {"p50_ms": 1e3 * float(np.percentile(times, 50)),
            "p95_ms": 1e3 * float(np.percentile(times, 95))}


def _grad(loss_fn):
    """d loss_fn(trainable, ...) / d trainable, for the active backend."""
    if _backend() == "jax":
        import jax
        return jax.grad(loss_fn)
    import tensorflow as tf

    def grad(trainable, *args):
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            loss = loss_fn(trainable, *args)
        return tape.gradient(loss, trainable)
    return grad


def device() -> dict:
    """What ran: the accelerator (or CPU) by name, the backend and its version."""
    import keras
    info = {"backend": _backend(), "keras": keras.__version__, "machine": platform.processor()
            or platform.machine(), "cpus": os.cpu_count()}
    if info["backend"] == "jax":
        import jax
        d = jax.devices()[0]
        info.update(jax=jax.__version__, device=f"{d.platform}: "
                    f"{getattr(d, 'device_kind', d)}", accelerator=d.platform != "cpu")
    else:
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        info.update(tensorflow=tf.__version__, device=(
            tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            if gpus else "cpu"), accelerator=bool(gpus))
    return info


def peak_memory_gib():
    """Peak device memory so far (JAX devices that report it, TF GPUs), else the host
    process's peak resident memory (CPU)."""
    if _backend() == "jax":
        import jax
        peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    else:
        import tensorflow as tf
        peak = (tf.config.experimental.get_memory_info("GPU:0")["peak"]
                if tf.config.list_physical_devices("GPU") else None)
    if peak is None:
        import resource
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2), "host"
    return round(peak / 2**30, 2), "device"


def matmul_peak(size: int, dtype: str, repeats: int = 5) -> float:
    """Dense ``dtype`` matmul GFLOP/s (best of ``repeats``)."""
    import keras
    from keras import ops
    a = keras.random.normal((size, size), dtype=dtype, seed=0)
    b = keras.random.normal((size, size), dtype=dtype, seed=1)
    f = compiled(lambda x, y: ops.matmul(x, y))
    return 2 * size ** 3 / min(timed(lambda: f(a, b), repeats, warmup=2)) / 1e9


def block_functions(layer, x):
    """(forward, forward+backward) of ``layer`` on ``x``, compiled, no state updates."""
    from keras import ops
    trainable = [ops.convert_to_tensor(v) for v in layer.trainable_variables]
    frozen = [ops.convert_to_tensor(v) for v in layer.non_trainable_variables]

    def forward(tv, ntv, inputs):
        return layer.stateless_call(tv, ntv, inputs, training=False)[0]

    def loss(tv, ntv, inputs):
        out = layer.stateless_call(tv, ntv, inputs, training=True)[0]
        return ops.sum(ops.square(ops.cast(out, "float32")))

    fwd, grad = compiled(forward), compiled(_grad(loss))
    return (lambda: fwd(trainable, frozen, x)), (lambda: grad(trainable, frozen, x))


def time_exponents(rows: list) -> dict:
    """The fitted exponent of forward time vs T, per batch and precision."""
    out = {}
    for key in sorted({(r["batch"], r["precision"]) for r in rows}):
        pts = [(r["T"], r["forward_ms"]) for r in rows if (r["batch"], r["precision"]) == key]
        if len(pts) >= 2:
            slope = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)
            out[f"batch{key[0]}/{key[1]}"] = round(float(slope[0]), 3)
    return out
