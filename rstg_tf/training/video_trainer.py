"""Training and evaluation of Something-Something models on converted JPEG shards.

The same run as the SyncMNIST trainer (``trainer.py``), on other data and another model:
Keras ``model.fit`` under the chosen distribution strategy, the shared callbacks
(``best.keras`` by validation top-1, ``last.keras``, the schedule, crash-safe backup and
resume, ``log.csv``, the time limit), and a config.json that a resumed run must match.
Validation reads ``val_split`` with centre crops; the reported split is read once, by
``evaluate_video`` (centre crop or the dense 22-clip protocol).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional

import keras
import numpy as np

from rstg_tf.data import manifest, video_clips
from rstg_tf.metrics import top_k_accuracy
from rstg_tf.models.video_resnet import (VideoModelConfig, build_video_model,
                                         rebuild_for_input)
from rstg_tf.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class VideoTrainConfig(TrainConfig):
    """A Something-Something run: TrainConfig's fields with a ``VideoModelConfig`` and the
    clip geometry. ``val_split`` is a part held out of the training videos (the official
    validation set is what papers report, so it is not used to choose checkpoints)."""

    model: VideoModelConfig = VideoModelConfig()
    clip: video_clips.ClipConfig = video_clips.ClipConfig()
    val_split: str = "holdout"

    def __post_init__(self):
        super().__post_init__()
        if self.clip.num_frames != self.model.num_frames or \
                (self.clip.crop_size,) * 2 != self.model.frame_size:
            raise ValueError(f"the clips ({self.clip.num_frames} frames, crop "
                             f"{self.clip.crop_size}) must match the model "
                             f"({self.model.num_frames} frames, {self.model.frame_size}).")
        if self.backbone_weights and self.freeze_backbone:
            raise ValueError("freeze_backbone is not supported for Something-Something "
                             "models (the reference fine-tunes the whole network).")

    def to_dict(self) -> dict:
        values = super().to_dict()
        values["clip"] = dataclasses.asdict(self.clip)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "VideoTrainConfig":
        values = dict(values)
        values["model"] = VideoModelConfig.from_dict(values["model"])
        clip = dict(values["clip"])
        clip["dense_offsets"] = tuple(clip["dense_offsets"])
        values["clip"] = video_clips.ClipConfig(**clip)
        return cls(**values)


def load_matching_weights(model: keras.Model, path: str) -> dict:
    """Copies the weights of a saved model (``.keras``) into ``model`` layer by layer,
    where a layer of the same name has weights of the same shapes (a Kinetics backbone into
    an SSv1 model: every layer but the classifier). Returns {'loaded': [...],
    'skipped': [...]} by layer name."""
    from rstg_tf import register_keras_objects

    if not os.path.exists(path):
        raise FileNotFoundError(f"backbone weights {path} do not exist.")
    register_keras_objects()
    source = keras.saving.load_model(path, compile=False)
    by_name = {layer.name: layer for layer in source.layers}
    loaded, skipped = [], []
    for layer in model.layers:
        other = by_name.get(layer.name)
        if not layer.weights:
            continue
        if other is None or [w.shape for w in other.weights] != \
                [w.shape for w in layer.weights]:
            skipped.append(layer.name)
            continue
        layer.set_weights(other.get_weights())
        loaded.append(layer.name)
    if not loaded:
        raise ValueError(f"no layer of {path} matches the model's names and shapes.")
    return {"loaded": loaded, "skipped": skipped}


def train_video(config: VideoTrainConfig) -> keras.callbacks.History:
    """Runs (or resumes) one Something-Something training run."""
    from rstg_tf.training.trainer import fit_run

    num_train, num_val = manifest.train_and_val_sizes(
        config.data_dir, config.val_split, "hold it out of the training list with python -m "
        "train.convert_smth --holdout_videos=N.")

    def datasets(global_batch, val_videos, corrupt):
        del corrupt                   # clip_dataset skips records, uncounted
        train = video_clips.clip_dataset(
            config.data_dir, "train", batch_size=global_batch, mode="train",
            config=config.clip, seed=config.seed, repeat=True, on_corrupt=config.on_corrupt)
        val = video_clips.clip_dataset(
            config.data_dir, config.val_split, batch_size=global_batch, mode="eval",
            config=config.clip, on_corrupt=config.on_corrupt, drop_remainder=False)
        return train, val.take(max(math.ceil(val_videos / global_batch), 1))

    def build():
        model = build_video_model(config.model)
        if config.backbone_weights:
            report = load_matching_weights(model, config.backbone_weights)
            print(f"initialised {len(report['loaded'])} layers from {config.backbone_weights}"
                  f"; not there (kept their initialisation): {report['skipped'] or 'none'}")
        return model

    return fit_run(config, num_train, num_val, datasets, build)


def load_run(model_dir: str):
    """(config, best model) of a finished or stopped run in ``model_dir``."""
    from rstg_tf import register_keras_objects

    register_keras_objects()
    config_path = os.path.join(model_dir, "config.json")
    best = os.path.join(model_dir, "best.keras")
    for path in (config_path, best):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist: is {model_dir} the --model_dir "
                                    f"of a python -m train.smth run?")
    with open(config_path) as f:
        config = VideoTrainConfig.from_dict(json.load(f))
    return config, keras.saving.load_model(best, compile=False)


def evaluate_video(model: keras.Model, config: VideoTrainConfig, data_dir: str, split: str,
                   dense: bool, batch_size: int, max_videos: Optional[int] = None) -> dict:
    """Top-1 / top-5 of ``model`` on ``split``: one centre clip a video, or (``dense``)
    the mean logits of ``config.clip.clips_per_video`` clips (2 temporal samplings x 11
    square crops across the width, 256 x 256: the model is rebuilt for that size, with
    the same weights)."""
    if dense:
        size = (config.clip.dense_size,) * 2
        model = rebuild_for_input(model, config.model, size)
        data = video_clips.clip_dataset(data_dir, split, batch_size=batch_size, mode="dense",
                                        config=config.clip)
        if max_videos:
            data = data.unbatch().take(max_videos * config.clip.clips_per_video).batch(
                batch_size)
        scores = video_clips.evaluate_dense(model, data)
    else:
        data = video_clips.clip_dataset(data_dir, split, batch_size=batch_size, mode="eval",
                                        config=config.clip, with_ids=True,
                                        drop_remainder=False)
        if max_videos:
            data = data.unbatch().take(max_videos).batch(batch_size)
        logits, labels = [], []
        for clips, batch_labels, _ in data:
            logits.append(np.asarray(model.predict_on_batch(clips)))
            labels.append(batch_labels.numpy())
        logits, labels = np.concatenate(logits), np.concatenate(labels)
        known = labels >= 0
        scores = {f"top{k}": (top_k_accuracy(logits[known], labels[known], k)
                              if known.any() else None) for k in (1, 5)}
        scores.update(num_videos=len(labels), num_clips=len(labels))
    return {"split": split, "dense": dense, "top1": scores["top1"], "top5": scores["top5"],
            "num_videos": int(scores["num_videos"]), "num_clips": int(scores["num_clips"])}
