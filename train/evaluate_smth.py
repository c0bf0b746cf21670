"""Score a Something-Something run's best.keras: ``python -m train.evaluate_smth``.

  python -m train.evaluate_smth --model_dir=runs/i3d_rstg_res3_res4 --split=validation \
      --dense

One centre 224 x 224 clip a video, or with --dense the reference's 22 clips (2 temporal
samplings x 11 square 256 x 256 crops across the width) with their logits averaged per
video. Prints top-1 / top-5 and writes eval_{split}[_dense].json into the model dir.
"""

import json
import os

from absl import flags

from rstg_tf import cli

flags.DEFINE_string("model_dir", None, "A python -m train.smth run.", required=True)
flags.DEFINE_string("data_dir", None, "Converted shards (default: the run's --data_dir).")
flags.DEFINE_string("split", "validation", "Split to score (the official validation set is "
                    "what the paper reports).")
flags.DEFINE_boolean("dense", False, "22 clips a video, logits averaged.")
flags.DEFINE_integer("batch_size", 8, "Clips per batch.", lower_bound=1)
flags.DEFINE_integer("max_videos", None, "Score only the first N videos.", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from rstg_tf.data.atomic import atomic_write_text
    from rstg_tf.training.video_trainer import evaluate_video, load_run

    config, model = load_run(FLAGS.model_dir)
    result = evaluate_video(model, config, FLAGS.data_dir or config.data_dir, FLAGS.split,
                            FLAGS.dense, FLAGS.batch_size, FLAGS.max_videos)
    name = f"eval_{FLAGS.split}{'_dense' if FLAGS.dense else ''}.json"
    atomic_write_text(os.path.join(FLAGS.model_dir, name), json.dumps(result, indent=1) + "\n")
    fmt = lambda v: "n/a (no labels)" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    print(f"{FLAGS.split}{' (dense)' if FLAGS.dense else ''}: top-1 {fmt(result['top1'])}, "
          f"top-5 {fmt(result['top5'])} over {result['num_videos']} videos "
          f"({result['num_clips']} clips)")


if __name__ == "__main__":
    cli.run(main)
