"""Evaluate a trained model: ``python -m train.evaluate --model_dir=... --data_dir=...``.

The test split is for this program alone: training chose the checkpoint and the learning
rate on the val split, so a test score read here once is an unbiased one.

Prints top-1 / top-5, the sync-pair accuracy (of the pairs of digits in a clip, is the
synchronous one ranked first; 1/3 for a sync-blind model on 3SyncMNIST) and the
present-pair accuracy (is the top-1 class a pair of the clip's digits)
and writes eval_<split>.json (top1, top5, sync_pair_top1, present_pair_top1, per-class
accuracy, confusion matrix, parameters), confusion_<split>.png and learning_curves.png
(from log.csv).
"""

import json

from absl import flags

from rstg_tf import cli

flags.DEFINE_string("model_dir", None, "A training run's --model_dir.")
flags.DEFINE_string("data_dir", None, "Shard directory (python -m train.make_syncmnist).")
flags.DEFINE_alias("data", "data_dir")
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to evaluate.")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "best.keras or last.keras.")
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1)
flags.DEFINE_integer("max_videos", None, "Only the first N videos.", lower_bound=1)
flags.DEFINE_string("output_dir", None, "Where results go (default: --model_dir).")
flags.mark_flags_as_required(["model_dir", "data_dir"])
cli.require_paths(directories=["model_dir", "data_dir"])


def main(argv):
    del argv
    f = flags.FLAGS
    from rstg_tf.training.evaluation import evaluate
    from train.table_report import collapse_note

    results = evaluate(f.model_dir, f.data_dir, split=f.split, checkpoint=f.checkpoint,
                       batch_size=f.batch_size, max_videos=f.max_videos,
                       output_dir=f.output_dir)
    print(f"\n{f.split}: top-1 {100 * results['top1']:.2f}%  top-5 {100 * results['top5']:.2f}%"
          f"  ({results['num_videos']} videos, chance {100 * results['chance']:.2f}%)")
    if results["sync_pair_top1"] is not None:
        print(f"sync pair (which present pair is synchronous): "
              f"{100 * results['sync_pair_top1']:.2f}%  (sync-blind "
              f"{100 * results['sync_pair_chance']:.1f}%, "
              f"{results['sync_pair_videos']} videos)")
        print(f"present pair (the top-1 class is a pair of the clip's digits): "
              f"{100 * results['present_pair_top1']:.2f}%")
    collapsed = collapse_note(results)
    if collapsed:
        print(f"warning: the model {collapsed}: a collapsed run (see log.csv)")
    print(json.dumps({"files": results["files"]}))


if __name__ == "__main__":
    cli.run(main)
