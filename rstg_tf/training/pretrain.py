"""Backbone pretraining as in the paper: classify one digit placed at random in a frame.

    frame [B, 1, 64, 64, 1] -> SimpleC2D -> mean over space -> dense(10)

The trained backbone's weights are saved as a Keras ``.weights.h5`` file that
``load_backbone_weights`` puts into any model built by ``rstg_tf.models.build_model``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

import keras

from rstg_tf.data.atomic import atomic_path
from rstg_tf.models import ModelConfig, build_backbone
from rstg_tf.training.array_inputs import array_arguments
from rstg_tf.data.single_digits import single_digit_frames


LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class PretrainRecipe:
    """How a backbone is pretrained (plain data; the Table 1 budgets name one each).

    ``file_name`` names the weights by the recipe, so that weights made under another
    recipe are never silently reused: ``backbone<filters>_<images>x<epochs>`` plus
    ``_<schedule><lr>`` when those are not the defaults (constant Adam 1e-3).
    """
    num_filters: int
    num_images: int = 20000
    epochs: int = 2
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"

    def __post_init__(self):
        _check_schedule(self.lr_schedule)

    def file_name(self) -> str:
        name = f"backbone{self.num_filters}_{self.num_images}x{self.epochs}"
        if (self.lr_schedule, self.learning_rate) != ("constant", 1e-3):
            name += f"_{self.lr_schedule}{self.learning_rate:g}"
        return name + ".weights.h5"


def _check_schedule(lr_schedule: str) -> None:
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {lr_schedule!r}; expected one of "
                         f"{LR_SCHEDULES}.")


def backbone_model(backbone, config: ModelConfig, frames: int = 1) -> keras.Model:
    """``backbone`` alone as a model of uint8 clips [B, frames, H, W, C] -> feature maps:
    the layout its ``.weights.h5`` files are saved and loaded in."""
    clips = keras.Input((frames, *config.frame_size, config.channels), dtype="uint8")
    return keras.Model(clips, backbone(clips), name="backbone_only")


def pretrain_backbone(config: ModelConfig, mnist, path: str, num_images: int = 20000,
                      epochs: int = 2, batch_size: int = 64, learning_rate: float = 1e-3,
                      lr_schedule: str = "constant", seed: int = 0, verbose: int = 1) -> dict:
    """Trains ``config``'s backbone on single digits; saves its weights to ``path``.

    Args:
      config: the model config whose backbone (``num_filters``) is trained.
      mnist: an ``rstg_tf.data.mnist.Mnist``.
      path: where the weights go (``*.weights.h5``).
      num_images, epochs, batch_size, learning_rate: the run (Adam).
      lr_schedule: 'constant', or 'cosine' (decayed to 0 over the run's steps).

    Returns:
      {'train_accuracy', 'test_accuracy', 'final_learning_rate', 'path'} of the
      pretraining classifier.
    """
    if not path.endswith(".weights.h5"):
        raise ValueError(f"backbone weights are saved as '*.weights.h5'; got {path!r}.")
    _check_schedule(lr_schedule)
    keras.utils.set_random_seed(seed)
    x, y = single_digit_frames(mnist.train_images, mnist.train_labels, num_images, seed)
    x_test, y_test = single_digit_frames(mnist.test_images, mnist.test_labels,
                                         min(2000, len(mnist.test_images)), seed + 1)
    backbone = build_backbone(config)
    clips = keras.Input((1, *config.frame_size, config.channels), dtype="uint8")
    features = backbone(clips)
    pooled = keras.layers.GlobalAveragePooling3D()(features)
    logits = keras.layers.Dense(10, dtype="float32")(pooled)
    model = keras.Model(clips, logits, name="digit_classifier")
    if lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=math.ceil(len(x) / batch_size) * epochs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(**array_arguments((x, y), batch_size, seed), epochs=epochs,
                        verbose=verbose)
    _, test_accuracy = model.evaluate(**array_arguments((x_test, y_test), 256), verbose=0)
    with atomic_path(path) as tmp:
        backbone_model(backbone, config).save_weights(tmp, overwrite=True)
    return {"train_accuracy": float(history.history["accuracy"][-1]),
            "test_accuracy": float(test_accuracy),
            "final_learning_rate": float(model.optimizer.learning_rate), "path": path}


def load_backbone_weights(model: keras.Model, path: str, config: ModelConfig,
                          trainable: Optional[bool] = None) -> None:
    """Loads pretrained backbone weights into ``model``'s ``backbone`` layer."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"backbone weights {path} do not exist; make them with "
                                f"python -m train.pretrain --output={path}.")
    backbone = model.get_layer("backbone")
    try:
        backbone_model(backbone, config).load_weights(path)
    except ValueError as e:
        raise ValueError(f"backbone weights {path} do not fit this backbone "
                         f"(num_filters={config.num_filters}): {e}") from None
    if trainable is not None:
        backbone.trainable = trainable
