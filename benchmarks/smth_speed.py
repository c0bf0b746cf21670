"""Training speed of a Something-Something model on synthetic clips, under any Keras backend.

  KERAS_BACKEND=jax python -m benchmarks.smth_speed --output_dir=$OUT

Builds the model (default: I3D ResNet-50 + RSTG-to-map at res3 and res4, 32 x 224 x 224,
mixed bfloat16), compiles the reference's SGD-Nesterov step (XLA under JAX) and, for each
batch size in ``--batch_sizes`` from the largest, tries to train: a batch that does not
fit in device memory is reported and the next smaller one is tried; the first that fits
is timed (``--warmup`` steps, then ``--steps``). Writes ``smth_speed.json`` and
``smth_speed.md``: clips/s, ms a step, peak device memory (JAX) and the model's
parameters. Never imports TensorFlow under JAX (the GPU machine has none). ``--smoke``: a
reduced-width model on 4 x 64 x 64 clips, for the tests and a CPU rehearsal.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from benchmarks.backend_timing import device, peak_memory_gib
from rstg_tf import cli

flags.DEFINE_string("output_dir", ".", "Where smth_speed.json and smth_speed.md go.")
flags.DEFINE_enum("backbone", "i3d", ["c2d", "i3d"], "ResNet-50 backbone.")
flags.DEFINE_list("rstg_stages", ["res3", "res4"], "RSTG-to-map places.")
flags.DEFINE_list("batch_sizes", ["32", "24", "16", "8", "4"], "Batch sizes to try, the "
                  "largest that fits is timed.")
flags.DEFINE_string("dtype_policy", "mixed_bfloat16", "Keras dtype policy.")
flags.DEFINE_integer("warmup", 2, "Untimed steps (the first compiles).", lower_bound=1)
flags.DEFINE_integer("steps", 10, "Timed steps.", lower_bound=1)
flags.DEFINE_boolean("smoke", False, "Width 8, node dim 16, 4 x 64 x 64 clips.")

FLAGS = flags.FLAGS


def _config(smoke: bool, backbone: str, stages):
    from rstg_tf.config import PRESETS
    from rstg_tf.models.video_resnet import VideoModelConfig

    if smoke:
        return VideoModelConfig(backbone=backbone, num_classes=174, num_frames=4,
                                frame_size=(64, 64), width=8, rstg_stages=tuple(stages),
                                rstg=PRESETS["ssv1"].replace(node_dim=16, message_dim=16))
    return VideoModelConfig(backbone=backbone, rstg_stages=tuple(stages))


def _is_out_of_memory(error: Exception) -> bool:
    text = f"{type(error).__name__} {error}"
    return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "OOM",
                                   "out of memory", "ResourceExhausted"))


def measure(config, batch: int, dtype_policy: str, warmup: int, steps: int) -> dict:
    """Trains ``steps`` timed steps of ``batch`` synthetic clips; returns the figures."""
    import keras
    import numpy as np
    from keras import ops

    from rstg_tf.models.video_resnet import build_video_model, count_params

    keras.config.set_dtype_policy(dtype_policy)
    try:
        model = build_video_model(config)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=keras.backend.backend() == "jax")
    rng = np.random.default_rng(0)
    shape = (batch, config.num_frames, *config.frame_size, 3)
    clips = ops.convert_to_tensor(rng.normal(size=shape).astype("float32"))   # on device
    labels = ops.convert_to_tensor(rng.integers(0, config.num_classes, batch))
    start = time.perf_counter()
    for _ in range(warmup):
        loss = model.train_on_batch(clips, labels)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(clips, labels)   # returns a host float: synchronised
    seconds = (time.perf_counter() - start) / steps
    peak, where = peak_memory_gib()
    return {"batch": batch, "ms_per_step": round(seconds * 1e3, 2),
            "clips_per_s": round(batch / seconds, 2),
            "warmup_s": round(first, 1), "loss": float(loss),
            "peak_memory_gib": peak if where == "device" else None,
            "params": count_params(model)}


def _markdown(result: dict) -> str:
    c, m = result["config"], result["measured"]
    rows = "\n".join(f"| {t['batch']} | {t['outcome']} |" for t in result["tried"])
    lines = [
        f"# Something-Something training speed ({result['device']})", "",
        f"Model: {c['backbone']} ResNet-50 (width {c['width']}) + RSTG-to-map at "
        f"{', '.join(c['rstg_stages']) or 'nowhere'}, {c['num_frames']} x "
        f"{c['frame_size'][0]} x {c['frame_size'][1]} clips, {result['dtype_policy']}, "
        f"Keras {result['keras']} ({result['backend']}).", "",
        "| batch tried | outcome |", "| --- | --- |", rows, ""]
    if m:
        lines += [f"Timed batch {m['batch']}: **{m['clips_per_s']} clips/s**, "
                  f"{m['ms_per_step']} ms a step, peak device memory "
                  f"{m['peak_memory_gib']} GiB; first {result['warmup']} steps (compile) "
                  f"{m['warmup_s']} s. Parameters {m['params']['total']:,} "
                  f"(graph {m['params']['graph']:,}).", ""]
    return "\n".join(lines)


def main(argv):
    del argv
    import keras

    config = _config(FLAGS.smoke, FLAGS.backbone, FLAGS.rstg_stages)
    batches = sorted({int(b) for b in FLAGS.batch_sizes}, reverse=True)
    tried, measured = [], None
    for batch in batches:
        try:
            measured = measure(config, batch, FLAGS.dtype_policy, FLAGS.warmup, FLAGS.steps)
            tried.append({"batch": batch, "outcome": f"{measured['clips_per_s']} clips/s"})
            break
        except Exception as e:   # noqa: BLE001 (out of memory: try a smaller batch)
            if not _is_out_of_memory(e):
                raise
            tried.append({"batch": batch, "outcome": "out of device memory"})
            keras.backend.clear_session()
    ran_on = device()
    version = ran_on.get("jax", ran_on.get("tensorflow"))
    result = {"device": f"{ran_on['device']} ({ran_on['backend']} {version})",
              "backend": ran_on["backend"], "keras": keras.__version__, "dtype_policy": FLAGS.dtype_policy,
              "warmup": FLAGS.warmup, "steps": FLAGS.steps, "config": config.to_dict(),
              "tried": tried, "measured": measured}
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    from rstg_tf.data.atomic import atomic_write_text
    atomic_write_text(os.path.join(FLAGS.output_dir, "smth_speed.json"),
                      json.dumps(result, indent=1) + "\n")
    text = _markdown(result)
    atomic_write_text(os.path.join(FLAGS.output_dir, "smth_speed.md"), text)
    print(text)
    if measured is None:
        cli.fail(f"no batch size of {batches} fits in device memory.")


if __name__ == "__main__":
    cli.run(main)
