"""Speed of the RSTG block and models under whichever Keras backend is active.

  python -m benchmarks.any_backend --quick --output_dir=benchmarks/measured/cpu_tf
  KERAS_BACKEND=jax python -m benchmarks.any_backend --output_dir=$OUT     # a GPU, no TF

Times, each figure beside its FLOP count and its share of a dense-matmul peak measured in
the same run (float32, and bfloat16 on a GPU):
  - the block (D=512, N=14, K=3, all_temp, dot gather, layer norm) forward and
    forward+backward over T, per batch and precision, with the exponent of time vs T;
  - the training step (``model.train_on_batch``, Adam) of the device-budget SyncMNIST row
    (32 filters, D=64) and of the paper-size model (512 filters, D=512): clips/s, peak
    memory, and the hours one such device needs for the reference's 100 epochs of 600k
    videos;
  - the batch-1 streaming step (``StreamingClassifier.step``), p50 / p95 ms;
  - the in-memory trainer's host-side input wait as a share of its step time.
Under JAX the functions are ``jax.jit``-compiled (gradients by ``jax.grad`` through Keras'
stateless calls) and TensorFlow is never imported; under TensorFlow, ``tf.function``.
Writes ``any_backend.json`` and ``any_backend.md``. ``--smoke``: tiny sizes (the tests).
"""

from __future__ import annotations

import json
import os

from absl import flags

from rstg_tf import cli

# lengths / batches / precisions of the block section; repeats; matmul size; the two
# training-step models (filters, D, batch); streaming steps; videos of the input section.
SIZES = {
    "full": dict(dim=512, lengths=(8, 16, 32, 64, 128), batches=(8, 64),
                 precisions=("float32", "mixed_bfloat16"), repeats=5, matmul=8192,
                 models={"device_row": (32, 64, 64), "paper": (512, 512, 8)}, steps=20,
                 stream_steps=200, videos=512),
    "quick": dict(dim=512, lengths=(8, 16, 32), batches=(8,), precisions=("float32",),
                  repeats=2, matmul=2048,
                  models={"device_row": (32, 64, 64), "paper": (512, 512, 8)}, steps=3,
                  stream_steps=50, videos=256),
    "smoke": dict(dim=16, lengths=(2, 4), batches=(2,), precisions=("float32",),
                  repeats=1, matmul=128, models={"device_row": (4, 8, 4)}, steps=2,
                  stream_steps=5, videos=16),
}


def run(mode: str, output_dir: str) -> dict:
    """Every section at ``SIZES[mode]``; writes any_backend.json / .md to ``output_dir``
    and returns the figures."""
    from benchmarks import any_backend_sections as sections
    from benchmarks.backend_timing import device, matmul_peak
    from rstg_tf.data.atomic import atomic_write_text

    z = SIZES[mode]
    os.makedirs(output_dir, exist_ok=True)
    result = {"mode": mode, "device": device()}

    def save():           # after every section: a run cut by a timeout keeps what it has
        atomic_write_text(os.path.join(output_dir, "any_backend.json"),
                          json.dumps(result, indent=1) + "\n")

    print(f"{mode} run on {result['device']['device']} ({result['device']['backend']})",
          flush=True)
    precisions = ["float32"] + (["bfloat16"] if result["device"]["accelerator"] else [])
    result["matmul_peak_gflop_per_s"] = {p: round(matmul_peak(z["matmul"], p), 1)
                                         for p in precisions}
    print(f"matmul peak GFLOP/s: {result['matmul_peak_gflop_per_s']}", flush=True)
    result["streaming"] = sections.streaming(z)
    save()
    result["training"], result["input_wait"] = sections.training(
        z, result["matmul_peak_gflop_per_s"])
    save()
    result["block"] = {}
    sections.block(z, result["matmul_peak_gflop_per_s"], result["block"], save)
    text = sections.markdown(result)
    atomic_write_text(os.path.join(output_dir, "any_backend.md"), text)
    print(text)
    return result


def main(argv):
    del argv
    f = flags.FLAGS
    run("smoke" if f.smoke else "quick" if f.quick else "full", f.output_dir)


if __name__ == "__main__":
    # defined only when run as a program: ``python -m benchmarks`` (other flags of the same
    # names) calls ``run`` under backends other than TensorFlow
    flags.DEFINE_string("output_dir", ".", "Where any_backend.json and any_backend.md go.")
    flags.DEFINE_boolean("quick", False, "CPU sizes: T up to 32, batch 8, float32 only.")
    flags.DEFINE_boolean("smoke", False, "Tiny sizes (D=16): every section runs; figures "
                         "mean little.")
    cli.run(main)
