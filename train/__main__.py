"""Train a clip classifier on SyncMNIST shards: ``python -m train``.

  python -m train --flagfile=configs/syncmnist3_rstg_all_temp.flags --model_dir=runs/all_temp

Killed, or stopped by --max_train_minutes? Run the same command again: BackupAndRestore
resumes from the last finished epoch.
Outputs in --model_dir: config.json, best.keras, last.keras, log.csv, tensorboard/, backup/.
"""

from absl import flags

from rstg_tf import cli
from rstg_tf.training.config import check_inputs
from train import train_flags

train_flags.define_flags()
cli.require_paths(directories=["data_dir"])


def main(argv):
    del argv
    config = train_flags.config_from_flags(flags.FLAGS)
    check_inputs(config)              # bad flags, missing data: refused before TF loads
    from rstg_tf.training.trainer import train

    cli.report_fit(train(config), config)


if __name__ == "__main__":
    cli.run(main)
