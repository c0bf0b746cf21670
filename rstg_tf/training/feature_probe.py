"""Motion-blind probes: how far a frozen backbone's features go without seeing motion.

A quick-budget row whose test top-1 stays under the motion-blind ceiling (1/3 on
3SyncMNIST: the three digits known, their pair guessed) has not yet learned motion; the
probes say how far the same frozen features go for a model that cannot learn it. Each
clip becomes the time-mean of RSTG's node inputs (the backbone's map area-pooled into the
graph's nodes, SPEC section 1), so frame order is gone by construction:

    clips [B, T, 64, 64, 1] -> frozen SimpleC2D -> mean over T -> [B, H*W, C]
          -> pooling matrix [N, H*W] -> nodes [B, N, C]

and a small classifier learns the 46 classes from them (``PROBES``):

    mean:  the last node (the 1x1 scale: the space-time mean of the map) -> batch norm
           -> dense(256, ReLU) -> dense(classes)
    nodes: every node -> batch norm -> the same dense(128, ReLU) per node -> mean over
           nodes -> dense(classes)  (Space-only without message passing or time)
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import keras
import numpy as np

from rstg_tf.graph import build_graph
from rstg_tf.models import ModelConfig, build_backbone
from rstg_tf.training.array_inputs import ShuffledBatches, validation_arguments
from rstg_tf.training.pretrain import backbone_model


def _mean_probe(feature_shape, num_classes: int) -> keras.Model:
    nodes = keras.Input(feature_shape)
    x = keras.layers.BatchNormalization()(nodes[:, -1])
    x = keras.layers.Dense(256, activation="relu")(x)
    return keras.Model(nodes, keras.layers.Dense(num_classes)(x), name="mean_probe")


def _nodes_probe(feature_shape, num_classes: int) -> keras.Model:
    nodes = keras.Input(feature_shape)
    x = keras.layers.BatchNormalization()(nodes)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(nodes, keras.layers.Dense(num_classes)(x), name="nodes_probe")


PROBES: Dict[str, Callable[[Tuple[int, int], int], keras.Model]] = {
    "mean": _mean_probe,
    "nodes": _nodes_probe,
}


def motion_blind_optimum(num_digits: int) -> Dict[str, float]:
    """Top-1 and loss of a model sure of the clip's digits but blind to which pair moves
    together (one of C(D, 2) pairs, uniformly; the rare no-pair class left out)."""
    pairs = math.comb(num_digits, 2)
    return {"top1": 1.0 / pairs, "loss": math.log(pairs)}


def node_features(frames_and_labels, config: ModelConfig, weights_path: str,
                  num_videos: int, verbose: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Time-mean node inputs float32 [V, N, C] and labels [V] of a ``(frames, labels)``
    batch iterable (``num_videos`` of them, for the progress bar), through the frozen
    backbone of ``config`` with ``weights_path``'s weights."""
    backbone = build_backbone(config)
    backbone_model(backbone, config).load_weights(weights_path)
    extractor = backbone_model(backbone, config, frames=config.num_frames)
    bar = keras.utils.Progbar(num_videos, verbose=verbose, unit_name="video")
    pooling, features, labels = None, [], []
    for frames, label in frames_and_labels:
        maps = np.asarray(extractor.predict_on_batch(frames), np.float32).mean(axis=1)
        b, h, w, c = maps.shape
        if pooling is None:
            graph = build_graph(config.frame_size, config.rstg.num_scales)
            pooling = graph.pooling_matrix(h, w).astype(np.float32)
        features.append(np.einsum("nk,bkc->bnc", pooling, maps.reshape(b, h * w, c)))
        labels.append(np.asarray(label))
        bar.add(b)
    if not features:
        raise ValueError("no clips to compute features from.")
    return np.concatenate(features), np.concatenate(labels)


def run_probe(kind: str, train: Tuple[np.ndarray, np.ndarray],
              val: Tuple[np.ndarray, np.ndarray], num_classes: int, epochs: int,
              steps_per_epoch: int, batch_size: int = 16, learning_rate: float = 1e-3,
              seed: int = 0, verbose: int = 0) -> Dict[str, list]:
    """Trains probe ``kind`` (Adam) on ``train`` features; returns its per-epoch history
    (loss, top1, top5, val_loss, val_top1, val_top5)."""
    if kind not in PROBES:
        raise ValueError(f"unknown probe {kind!r}; expected one of {sorted(PROBES)}.")
    keras.utils.set_random_seed(seed)
    model = PROBES[kind](train[0].shape[1:], num_classes)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseTopKCategoricalAccuracy(1, name="top1"),
                           keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")])
    batches = ShuffledBatches(train[0], train[1], batch_size, steps_per_epoch, seed=seed)
    history = model.fit(**batches.fit_arguments(epochs), epochs=epochs, verbose=verbose,
                        **validation_arguments(val, 256))
    return {k: [float(v) for v in values] for k, values in history.history.items()}
