"""The sections of ``python -m benchmarks.any_backend`` (block, training step, streaming,
input wait) and its markdown. Backend-neutral: ``keras.ops`` and the compile / gradient
helpers of ``benchmarks.any_backend``; never imports TensorFlow under JAX."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.backend_timing import (REFERENCE_CLIPS, block_functions, compiled,
                                       peak_memory_gib, percentiles_ms, time_exponents,
                                       timed)
from benchmarks.flops import H, W, rstg_flops_per_frame, simple_c2d_flops_per_frame

NODES = 14          # 1 + 4 + 9 nodes of the three scales


def _block_config(dim: int):
    from rstg_tf.config import RSTGConfig
    return RSTGConfig(node_dim=dim, message_dim=dim, gather="dot", norm="layer")


def _share(gflop_per_s: float, peaks: dict, precision: str) -> float:
    peak = peaks.get("bfloat16" if "bfloat16" in precision else "float32") or \
        peaks["float32"]
    return round(gflop_per_s / peak, 4)


def block(z: dict, peaks: dict, out: dict = None, save=None) -> dict:
    """Forward and forward+backward of the block over T, batch and precision, filled
    into ``out`` (and ``save()`` called) row by row."""
    import keras

    from rstg_tf.layers.rstg import RSTG

    config, rows, out = _block_config(z["dim"]), [], {} if out is None else out
    per_frame = rstg_flops_per_frame(config, z["dim"])
    out.update(config=f"D={z['dim']}, N={NODES}, K={config.num_iterations}, all_temp, dot "
                      "gather, layer norm, 6x6 input map",
               flops_per_frame=per_frame, rows=rows, time_exponent_vs_T={})
    for precision in z["precisions"]:
        for batch in z["batches"]:
            for t in z["lengths"]:
                keras.config.set_dtype_policy(precision)
                try:
                    layer = RSTG(config, name="block")
                    layer.build((None, t, H, W, z["dim"]))
                finally:
                    keras.config.set_dtype_policy("float32")
                x = keras.random.normal((batch, t, H, W, z["dim"]), seed=0)
                forward, train = block_functions(layer, x)
                fwd = float(np.median(timed(forward, z["repeats"])))
                both = float(np.median(timed(train, z["repeats"])))
                gflops = batch * t * per_frame / 1e9
                rows.append({"precision": precision, "batch": batch, "T": t,
                             "forward_ms": round(fwd * 1e3, 3),
                             "train_ms": round(both * 1e3, 3),
                             "forward_gflops": round(gflops, 3),
                             "forward_gflop_per_s": round(gflops / fwd, 2),
                             "train_gflop_per_s": round(3 * gflops / both, 2),
                             "forward_share_of_peak": _share(gflops / fwd, peaks, precision),
                             "train_share_of_peak": _share(3 * gflops / both, peaks,
                                                           precision)})
                print(f"block {precision} batch {batch} T {t}: forward {fwd * 1e3:.2f} ms, "
                      f"forward+backward {both * 1e3:.2f} ms", flush=True)
                out["time_exponent_vs_T"] = time_exponents(rows)
                if save:
                    save()
    return out


def _model(filters: int, dim: int):
    from rstg_tf.config import RSTGConfig
    from rstg_tf.models import ModelConfig, build_model
    config = ModelConfig(num_filters=filters, hidden=dim,
                         rstg=RSTGConfig(node_dim=dim, message_dim=dim, norm="layer"))
    return config, build_model(config)


def _compiled_model(filters: int, dim: int):
    import keras
    keras.utils.set_random_seed(0)
    config, model = _model(filters, dim)
    model.compile(keras.optimizers.Adam(1e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=keras.backend.backend() == "jax")
    return config, model


def training(z: dict, peaks: dict):
    """Training steps (Adam, ``train_on_batch``) of the benchmark models on random clips:
    clips/s, FLOPs (3x the forward's), peak memory, hours for the reference schedule;
    then the input wait (``input_wait``) on the device-budget row's compiled model.
    Returns (figures per model, input wait)."""
    out, wait = {}, None
    for name, (filters, dim, batch) in z["models"].items():
        config, model = _compiled_model(filters, dim)
        rng = np.random.default_rng(0)
        clips = rng.integers(0, 256, (batch, config.num_frames, *config.frame_size, 1),
                             dtype=np.uint8)
        labels = rng.integers(0, config.num_classes, batch)
        start = time.perf_counter()
        model.train_on_batch(clips, labels)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(z["steps"]):
            model.train_on_batch(clips, labels)        # returns host floats: synchronised
        step = (time.perf_counter() - start) / z["steps"]
        frames = batch * config.num_frames
        forward = frames * (simple_c2d_flops_per_frame(filters)
                            + rstg_flops_per_frame(config.rstg, filters))
        clips_per_s = batch / step
        memory, where = peak_memory_gib()
        out[name] = {"filters": filters, "D": dim, "batch": batch,
                     "ms_per_step": round(step * 1e3, 2), "clips_per_s": round(clips_per_s, 1),
                     "compile_s": round(compile_s, 1),
                     "train_gflops_per_step": round(3 * forward / 1e9, 2),
                     "train_gflop_per_s": round(3 * forward / step / 1e9, 1),
                     "share_of_fp32_peak": round(3 * forward / step / 1e9 / peaks["float32"], 4),
                     f"peak_{where}_memory_gib": memory,
                     "reference_schedule_hours": round(REFERENCE_CLIPS / clips_per_s / 3600, 1)}
        print(f"training {name}: {clips_per_s:.1f} clips/s ({step * 1e3:.1f} ms a step of "
              f"{batch})", flush=True)
        if name == "device_row":
            wait = input_wait(z, config, model, batch)
    return out, wait


def streaming(z: dict) -> dict:
    """Batch-1 online step of the paper-size (or smoke) model: p50 / p95 ms."""
    from rstg_tf.models.streaming import StreamingClassifier

    filters, dim, _ = z["models"].get("paper", z["models"]["device_row"])
    config, model = _model(filters, dim)
    stream = StreamingClassifier(model)
    step = compiled(lambda frame, state: stream.step(frame, state))
    frame = np.zeros((1, *config.frame_size, 1), np.uint8)
    state = stream.initial_state(1, dtype="float32")
    times = []
    for i in range(z["stream_steps"] + 3):
        start = time.perf_counter()
        logits, state = step(frame, state)
        np.asarray(logits)                            # synchronised
        if i >= 3:                                    # the first calls compile
            times.append(time.perf_counter() - start)
    latency = percentiles_ms(times)
    print(f"streaming: p50 {latency['p50_ms']:.2f} ms", flush=True)
    return {"filters": filters, "D": dim, "steps": len(times), **latency}


def input_wait(z: dict, config, model, batch: int) -> dict:
    """The in-memory trainer's input path (``ShuffledBatches`` through ``fit``) against
    the same steps on a batch already in memory: the host-side wait as a share."""
    from rstg_tf.training.array_inputs import ShuffledBatches

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (z["videos"], config.num_frames, *config.frame_size, 1),
                     dtype=np.uint8)
    y = rng.integers(0, config.num_classes, z["videos"])
    steps = max(z["videos"] // batch, 2)

    def fit(epochs):
        batches = ShuffledBatches(x, y, batch, steps)
        start = time.perf_counter()
        model.fit(**batches.fit_arguments(epochs), epochs=epochs, verbose=0)
        return time.perf_counter() - start

    fit(1)                                            # compiles
    with_input = fit(1) / steps
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x[:batch], y[:batch])
    alone = (time.perf_counter() - start) / steps
    return {"batch": batch, "steps": steps, "fit_ms_per_step": round(with_input * 1e3, 2),
            "step_ms_alone": round(alone * 1e3, 2),
            "input_wait_share": round(max(with_input - alone, 0.0) / with_input, 3)}


def markdown(result: dict) -> str:
    d = result["device"]
    lines = [f"# RSTG speed on {d['device']} ({d['backend']}, Keras {d['keras']})", "",
             f"Matmul peak GFLOP/s: {result['matmul_peak_gflop_per_s']}.", "",
             f"Block ({result['block']['config']}; "
             f"{result['block']['flops_per_frame'] / 1e6:.1f} MFLOP a frame forward):", "",
             "| precision | batch | T | forward ms | fwd+bwd ms | fwd GFLOP/s (share of "
             "peak) | fwd+bwd GFLOP/s (share) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['precision']} | {r['batch']} | {r['T']} | {r['forward_ms']} | "
              f"{r['train_ms']} | {r['forward_gflop_per_s']} "
              f"({r['forward_share_of_peak']:.1%}) | {r['train_gflop_per_s']} "
              f"({r['train_share_of_peak']:.1%}) |" for r in result["block"]["rows"]]
    lines += ["", f"Exponent of forward time vs T: {result['block']['time_exponent_vs_T']}.",
              "", "| training step | batch | ms a step | clips/s | GFLOP/s (share of fp32 "
              "peak) | peak memory GiB | hours for 100 x 600k clips |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in result["training"].items():
        memory = next(v for k, v in r.items() if k.startswith("peak_"))
        where = next(k for k in r if k.startswith("peak_")).split("_")[1]
        lines.append(f"| {name} ({r['filters']} filters, D={r['D']}) | {r['batch']} | "
                     f"{r['ms_per_step']} | {r['clips_per_s']} | {r['train_gflop_per_s']} "
                     f"({r['share_of_fp32_peak']:.1%}) | {memory} ({where}) | "
                     f"{r['reference_schedule_hours']} |")
    s, w = result["streaming"], result["input_wait"]
    lines += ["", f"Streaming step, batch 1 ({s['filters']} filters, D={s['D']}): p50 "
              f"{s['p50_ms']} ms, p95 {s['p95_ms']} ms over {s['steps']} steps.", "",
              f"In-memory input wait (batch {w['batch']}): {w['fit_ms_per_step']} ms a step "
              f"through fit vs {w['step_ms_alone']} ms alone: "
              f"{w['input_wait_share']:.1%} of the step.", ""]
    return "\n".join(lines)
