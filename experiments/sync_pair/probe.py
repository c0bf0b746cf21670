"""Sync-blind probes of a frozen backbone: ``python -m experiments.sync_pair.probe``.

  python -m experiments.sync_pair.probe --data_dir=data/syncmnist3_quick --num_filters=32 \\
      --backbone_weights=runs/table3_quick/backbone32_60000x2_cosine0.002.weights.h5 \\
      --rows_dir=runs/table3_quick --output=runs/table3_quick/probe.json

How far the backbone's features go for classifiers that cannot find the synchronous pair
(what they read has neither frame order, for its motion, nor two digits' places in one
frame, for its constant offset; ``experiments.sync_pair.feature_probe``), trained with the
quick budget's steps, beside the sync-blind optimum (1/C(D,2) top-1 at loss ln C(D,2)).
A Table 1 row at or under the probes shows no more than a sync-blind reading of the same
features gives. Writes the JSON (per-epoch history of each probe, the optimum) and a
PNG of val top-1 per epoch beside it; with ``--rows_dir``, each row's val top-1 (from its
log.csv) is drawn too.
"""

import json
import os

from absl import flags

from rstg_tf import cli

flags.DEFINE_string("data_dir", None, "SyncMNIST shard directory (train and test splits).")
flags.DEFINE_string("backbone_weights", None, "Pretrained backbone (*.weights.h5).")
flags.DEFINE_integer("num_filters", 512, "Backbone width (must match the weights).",
                     lower_bound=1)
# experiments.sync_pair.feature_probe.PROBES, spelled out so that parsing flags does not load
# Keras; keep the two in step.
flags.DEFINE_multi_enum("probes", ["mean", "nodes", "cells"], ["mean", "nodes", "cells"],
                        "Probes to train.")
flags.DEFINE_integer("epochs", 7, "Epochs (the quick budget's).", lower_bound=1)
flags.DEFINE_integer("steps_per_epoch", 300, "Steps per epoch (the quick budget's).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Batch size (the quick budget's).", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_integer("max_videos", None, "Only the first N videos of each split.",
                     lower_bound=1)
flags.DEFINE_string("rows_dir", None, "A Table 1 work directory (python -m train.table): "
                    "its rows' val top-1 go on the plot.")
flags.DEFINE_string("output", None, "JSON to write (*.json); the PNG goes beside it.")
flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
flags.DEFINE_integer("verbose", 1, "Progress bars (0: none).", lower_bound=0, upper_bound=2)
flags.mark_flags_as_required(["data_dir", "backbone_weights", "output"])


def _split_features(f, split, config):
    from rstg_tf.data import pipeline, syncmnist_records
    from experiments.sync_pair.feature_probe import backbone_maps

    _, counts, _ = pipeline.split_files(f.data_dir, split)
    count = min(sum(counts), f.max_videos or sum(counts))
    data = syncmnist_records.dataset(f.data_dir, split, 64, with_digits=True)
    num_digits = int(data.element_spec[2].shape[-1])
    data = data.unbatch().take(count).batch(64).map(lambda x, y, d: (x, y))
    if f.verbose:
        print(f"{split}: features of {count} clips")
    return backbone_maps(data, config, f.backbone_weights, count, f.verbose), num_digits


def _rows_curves(rows_dir):
    from rstg_tf.training.run_log import read_log

    if not os.path.isdir(rows_dir):
        raise FileNotFoundError(f"--rows_dir {rows_dir} does not exist.")
    curves = {}
    for row in sorted(os.listdir(rows_dir)):
        top1 = read_log(os.path.join(rows_dir, row)).get("val_top1")
        if top1:
            curves[row] = [100 * v for v in top1]
    return curves


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.output.endswith(".json"):
        raise ValueError(f"--output must name a .json file; got {f.output!r}.")
    if not os.path.exists(f.backbone_weights):
        raise FileNotFoundError(f"--backbone_weights {f.backbone_weights} does not exist.")
    rows = _rows_curves(f.rows_dir) if f.rows_dir else {}
    from rstg_tf.models import ModelConfig
    from experiments.sync_pair.feature_probe import (all_probe_inputs, run_probe,
                                                sync_blind_optimum, write_val_top1_report)

    config = ModelConfig(num_filters=f.num_filters)
    train, num_digits = _split_features(f, "train", config)
    val, _ = _split_features(f, "val", config)
    optimum = sync_blind_optimum(num_digits)
    results = {"data_dir": f.data_dir, "backbone_weights": f.backbone_weights,
               "num_filters": f.num_filters, "num_digits": num_digits,
               "train_videos": len(train[1]), "val_videos": len(val[1]),
               "epochs": f.epochs, "steps_per_epoch": f.steps_per_epoch,
               "batch_size": f.batch_size, "learning_rate": f.learning_rate,
               "sync_blind_optimum": optimum, "probes": {}}
    kinds = list(dict.fromkeys(f.probes))
    train_inputs = all_probe_inputs(kinds, train[0], config)
    val_inputs = all_probe_inputs(kinds, val[0], config)
    for kind in kinds:
        history = run_probe(kind, (train_inputs[kind], train[1]), (val_inputs[kind], val[1]),
                            config.num_classes, f.epochs, f.steps_per_epoch, f.batch_size,
                            f.learning_rate, f.seed, verbose=f.verbose)
        results["probes"][kind] = history
        print(f"probe {kind}: val top-1 {100 * history['val_top1'][-1]:.1f}%, val loss "
              f"{history['val_loss'][-1]:.3f} after {f.epochs} x {f.steps_per_epoch} steps "
              f"(sync-blind optimum {100 * optimum['top1']:.1f}% at {optimum['loss']:.3f})")
    series = {f"probe {k}": [100 * v for v in h["val_top1"]]
              for k, h in results["probes"].items()}
    series.update(rows)
    results["rows_val_top1"] = rows
    files = write_val_top1_report(
        results, f.output, series, f"Val top-1: sync-blind probes of the frozen "
        f"{f.num_filters}-filter backbone ({num_digits} digits)",
        f"epoch ({f.steps_per_epoch} steps of {f.batch_size})", optimum, legend_outside=True)
    print(json.dumps({"files": files}))


if __name__ == "__main__":
    cli.run(main)
