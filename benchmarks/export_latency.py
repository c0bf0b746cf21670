"""What a server sees: batch-1 latency of an exported model's signatures, per weights dtype.

  python -m benchmarks.export_latency [--weights_dtypes=float32,bfloat16] [--steps=300]
                                      [--num_filters=512] [--output=export_latency.json]

Builds the default SyncMNIST RSTG model (random weights: speed does not depend on them),
exports it once per ``--weights_dtypes`` entry with ``export_saved_model`` into a temporary
directory, loads each SavedModel back and times, through its signatures as TF Serving
calls them: ``stream_step`` on one uint8 frame (backbone + RSTG online step + read-out,
p50 / p95 ms over ``--steps`` frames, the state fed back) and ``serving_default`` on one
whole clip. The dtypes are measured in turn, ``--rounds`` times, so that a drift of the
machine shows as spread rather than as a difference between dtypes.
"""

import json
import tempfile
import time

from absl import flags

from rstg_tf.config import WEIGHT_DTYPES
from rstg_tf import cli

flags.DEFINE_list("weights_dtypes", ["float32", "bfloat16"],
                  f"Weights dtypes to export and time, from {list(WEIGHT_DTYPES)}.")
flags.DEFINE_integer("steps", 300, "Timed stream_step calls per round.", lower_bound=2)
flags.DEFINE_integer("clips", 20, "Timed serving_default calls per round.", lower_bound=1)
flags.DEFINE_integer("rounds", 3, "Rounds over the dtypes.", lower_bound=1)
flags.DEFINE_integer("num_filters", 512, "Backbone width (the reference's: 512).",
                     lower_bound=1)
flags.DEFINE_integer("node_dim", 512, "RSTG node width D (the reference's: 512).",
                     lower_bound=1)
flags.DEFINE_string("output", None, "Also write the figures as JSON here.")
flags.register_validator(
    "weights_dtypes", lambda v: bool(v) and set(v) <= set(WEIGHT_DTYPES),
    f"--weights_dtypes must list dtypes from {list(WEIGHT_DTYPES)}.")


def time_signatures(path: str, steps: int, clips: int) -> dict:
    """p50 / p95 ms of ``stream_step`` (batch 1, state fed back) and ``serving_default``
    (one clip) of the SavedModel at ``path``."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.backend_timing import percentiles_ms

    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    init, step = loaded.signatures["stream_init"], loaded.signatures["stream_step"]
    clip_shape = serve.structured_input_signature[1]["video"].shape[1:]
    clip = tf.constant(np.random.default_rng(0).integers(
        0, 256, (1,) + tuple(clip_shape), dtype=np.uint8))
    state = init(batch=tf.constant(1))

    def one_step(t):
        out = step(frame=clip[:, t % clip_shape[0]], **state)
        out["probabilities"].numpy()
        return {k: out[k] for k in state}

    for t in range(5):                                   # warm-up
        state = one_step(t)
    times = []
    for t in range(steps):
        start = time.perf_counter()
        state = one_step(t)
        times.append(time.perf_counter() - start)
    result = {"stream_step": percentiles_ms(times)}
    serve(video=clip)["probabilities"].numpy()
    times = []
    for _ in range(clips):
        start = time.perf_counter()
        serve(video=clip)["probabilities"].numpy()
        times.append(time.perf_counter() - start)
    result["serving_default"] = percentiles_ms(times)
    return result


def main(argv):
    del argv
    f = flags.FLAGS
    import keras
    import tensorflow as tf

    from benchmarks.block_speed import machine
    from rstg_tf.config import RSTGConfig
    from rstg_tf.models import ModelConfig, build_model
    from rstg_tf.serving.saved_model import export_saved_model

    tf.get_logger().setLevel("ERROR")
    config = ModelConfig(num_filters=f.num_filters, rstg=RSTGConfig(node_dim=f.node_dim))
    keras.utils.set_random_seed(0)
    model = build_model(config)
    out = {"machine": machine(), "tensorflow": tf.__version__, "num_filters": f.num_filters,
           "node_dim": f.node_dim, "rounds": {d: [] for d in f.weights_dtypes}}
    with tempfile.TemporaryDirectory() as base:
        paths = {d: export_saved_model(model, config, base, f"m_{d}", warmup=False,
                                       weights_dtype=d) for d in f.weights_dtypes}
        for r in range(f.rounds):
            for d, path in paths.items():
                figures = time_signatures(path, f.steps, f.clips)
                out["rounds"][d].append(figures)
                print(f"round {r + 1}: {d:9s} stream_step p50 "
                      f"{figures['stream_step']['p50_ms']:.2f} ms, p95 "
                      f"{figures['stream_step']['p95_ms']:.2f}; serving_default (1 clip) "
                      f"p50 {figures['serving_default']['p50_ms']:.1f} ms", flush=True)
    if f.output:
        from rstg_tf.data.atomic import atomic_write_text
        atomic_write_text(f.output, json.dumps(out, indent=1) + "\n")
        print(f"wrote {f.output}")


if __name__ == "__main__":
    cli.run(main)
