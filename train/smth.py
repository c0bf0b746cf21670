"""Train a Something-Something model: ``python -m train.smth``.

  python -m train.smth --flagfile=configs/smth_i3d_rstg_res3_res4.flags \
      --data_dir=data/smth --model_dir=runs/i3d_rstg_res3_res4

The data: python -m train.convert_smth (train, with --holdout_videos, and validation).
Killed, or stopped by --max_train_minutes? Run the same command again to resume.
Outputs in --model_dir: config.json, best.keras (by holdout top-1), last.keras, log.csv,
tensorboard/, backup/. Then: python -m train.evaluate_smth --model_dir=... --dense.
"""

from absl import flags

from rstg_tf import cli
from train import smth_flags

smth_flags.define_flags()


def main(argv):
    del argv
    from rstg_tf.training.video_trainer import train_video

    config = smth_flags.config_from_flags(flags.FLAGS)
    cli.report_fit(train_video(config), config)


if __name__ == "__main__":
    cli.run(main)
