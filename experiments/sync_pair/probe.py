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
cli.require_paths(directories=["data_dir", "rows_dir"], files=["backbone_weights"])
flags.register_validator("output", lambda path: path is None or path.endswith(".json"),
                         "must name a .json file")


def main(argv):
    del argv
    f = flags.FLAGS
    from experiments.sync_pair.feature_probe import run_probes

    files = run_probes(f.data_dir, f.backbone_weights, f.output, num_filters=f.num_filters,
                       probes=f.probes, epochs=f.epochs, steps_per_epoch=f.steps_per_epoch,
                       batch_size=f.batch_size, learning_rate=f.learning_rate,
                       max_videos=f.max_videos, rows_dir=f.rows_dir, seed=f.seed,
                       verbose=f.verbose)
    print(json.dumps({"files": files}))


if __name__ == "__main__":
    cli.run(main)
