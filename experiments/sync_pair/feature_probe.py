"""Sync-blind probes: how far a frozen backbone's features go without finding the pair.

A quick-budget row whose test top-1 stays under the sync-blind ceiling (1/3 on
3SyncMNIST: the three digits known, their synchronous pair guessed) has not yet found the
pair; the probes say how far the same frozen features go for a model that cannot find it:

    clips [B, T, 64, 64, 1] -> frozen SimpleC2D -> maps [B, T, H, W, C]

and a small classifier learns the 46 classes from them (``PROBES``). By construction
none reads frame order (the pair's shared motion) or relates two digits' places within a
frame (the pair's constant offset) beyond one cell's window:

    mean:  the time-mean of the map, area-mean over space (RSTG's 1x1 node) -> batch
           norm -> dense(256, ReLU) -> dense(classes)
    nodes: the time-mean of RSTG's 14 node inputs (the graph's pooling matrix,
           docs/reference_code.md §1) -> batch norm -> the same dense(128, ReLU) per
           node -> mean over nodes -> dense(classes)  (Space-only without message
           passing or time)
    cells: every cell of every frame [T*H*W, C] -> batch norm -> dense(128, ReLU) ->
           dense(128, ReLU) -> max over cells and frames -> dense(256, ReLU) ->
           dense(classes)  (a stronger reader: each frame's own view of the digits)
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

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


def _cells_probe(feature_shape, num_classes: int) -> keras.Model:
    cells = keras.Input(feature_shape)
    x = keras.layers.BatchNormalization()(cells)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    return keras.Model(cells, keras.layers.Dense(num_classes)(x), name="cells_probe")


def node_inputs(maps: np.ndarray, config: ModelConfig) -> np.ndarray:
    """maps [V, T, H, W, C] -> time-mean node inputs float32 [V, N, C] (RSTG's nodes)."""
    v, _, h, w, c = maps.shape
    pooling = build_graph(config.frame_size, config.rstg.num_scales).pooling_matrix(h, w)
    out = np.empty((v, len(pooling), c), np.float32)
    for start in range(0, v, 1024):                      # float32 a chunk at a time
        chunk = maps[start:start + 1024].astype(np.float32).mean(axis=1)
        out[start:start + 1024] = np.einsum("nk,bkc->bnc", pooling.astype(np.float32),
                                            chunk.reshape(len(chunk), h * w, c))
    return out


def cell_inputs(maps: np.ndarray, config: ModelConfig) -> np.ndarray:
    """maps [V, T, H, W, C] -> every frame's cells [V, T*H*W, C] (a view, no copy)."""
    del config
    return maps.reshape(len(maps), -1, maps.shape[-1])


PROBES: Dict[str, Tuple[Callable[[Tuple[int, ...], int], keras.Model],
                        Callable[[np.ndarray, ModelConfig], np.ndarray]]] = {
    "mean": (_mean_probe, node_inputs),
    "nodes": (_nodes_probe, node_inputs),
    "cells": (_cells_probe, cell_inputs),
}


def sync_blind_optimum(num_digits: int) -> Dict[str, float]:
    """Top-1 and loss of a model sure of the clip's digits but blind to which pair is
    synchronous (one of C(D, 2) pairs, uniformly; the rare no-pair class left out)."""
    pairs = math.comb(num_digits, 2)
    return {"top1": 1.0 / pairs, "loss": math.log(pairs)}


def backbone_maps(frames_and_labels, config: ModelConfig, weights_path: str,
                  num_videos: int, verbose: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Feature maps float16 [V, T, H, W, C] and labels [V] of a ``(frames, labels)`` batch
    iterable (``num_videos`` clips, for the progress bar), through the frozen backbone of
    ``config`` with ``weights_path``'s weights. float16 halves the memory (2 bytes x T x H
    x W x C per clip: 23 KB at 32 filters, 369 KB at 512)."""
    backbone = build_backbone(config)
    backbone_model(backbone, config).load_weights(weights_path)
    extractor = backbone_model(backbone, config, frames=config.num_frames)
    bar = keras.utils.Progbar(num_videos, verbose=verbose, unit_name="video")
    maps, labels = [], []
    for frames, label in frames_and_labels:
        batch = np.asarray(extractor.predict_on_batch(frames))
        if not (np.isfinite(batch).all() and np.abs(batch).max() <= 65504):
            raise ValueError(f"the backbone's features ({weights_path}) are not finite or "
                             "exceed float16's range (65504).")
        maps.append(batch.astype(np.float16))
        labels.append(np.asarray(label))
        bar.add(len(labels[-1]))
    if not maps:
        raise ValueError("no clips to compute features from.")
    return np.concatenate(maps), np.concatenate(labels)


def _probe(kind: str):
    if kind not in PROBES:
        raise ValueError(f"unknown probe {kind!r}; expected one of {sorted(PROBES)}.")
    return PROBES[kind]


def probe_inputs(kind: str, maps: np.ndarray, config: ModelConfig) -> np.ndarray:
    """What probe ``kind`` reads from ``maps`` [V, T, H, W, C]."""
    return all_probe_inputs([kind], maps, config)[kind]


def all_probe_inputs(kinds: Sequence[str], maps: np.ndarray,
                     config: ModelConfig) -> Dict[str, np.ndarray]:
    """``probe_inputs`` of each of ``kinds``, each reader run once (``mean`` and ``nodes``
    share the node inputs)."""
    by_reader, inputs = {}, {}
    for kind in kinds:
        reader = _probe(kind)[1]
        if reader not in by_reader:
            by_reader[reader] = reader(maps, config)
        inputs[kind] = by_reader[reader]
    return inputs


def run_probe(kind: str, train: Tuple[np.ndarray, np.ndarray],
              val: Tuple[np.ndarray, np.ndarray], num_classes: int, epochs: int,
              steps_per_epoch: int, batch_size: int = 16, learning_rate: float = 1e-3,
              seed: int = 0, verbose: int = 0) -> Dict[str, list]:
    """Trains probe ``kind`` (Adam) on ``train`` = (its ``probe_inputs``, labels), validated
    on ``val``; returns the per-epoch history (loss, top1, top5, val_loss, val_top1,
    val_top5)."""
    build = _probe(kind)[0]
    keras.utils.set_random_seed(seed)
    model = build(train[0].shape[1:], num_classes)
    return fit_adam(model, train, val, epochs, steps_per_epoch, batch_size, learning_rate,
                    seed, verbose)


def fit_adam(model: keras.Model, train: Tuple[np.ndarray, np.ndarray],
             val: Tuple[np.ndarray, np.ndarray], epochs: int, steps_per_epoch: int,
             batch_size: int, learning_rate: float, seed: int = 0, verbose: int = 0,
             top_k: Sequence[int] = (1, 5),
             callbacks: Sequence[keras.callbacks.Callback] = (),
             clip_grad_norm: Optional[float] = None) -> Dict[str, list]:
    """Fits ``model`` (logits) with Adam (its gradients' global norm clipped at
    ``clip_grad_norm``, if given) and cross-entropy on ``steps_per_epoch`` shuffled
    batches of ``train`` an epoch, validated on ``val``; returns the per-epoch history
    (loss, top<k> and their val_ twins, and what ``callbacks`` log, e.g. a learning-rate
    schedule's ``learning_rate``) as floats. Shared by the probes and the oracle."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clip_grad_norm),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k, name=f"top{k}")
                           for k in top_k])
    batches = ShuffledBatches(train[0], train[1], batch_size, steps_per_epoch, seed=seed)
    history = model.fit(**batches.fit_arguments(epochs, callbacks), epochs=epochs,
                        verbose=verbose,
                        **validation_arguments(val, 256))
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def write_val_top1_report(results: dict, output: str, series: Dict[str, Sequence[float]],
                          title: str, x_label: str, optimum: Dict[str, float],
                          legend_outside: bool = False) -> dict:
    """Writes ``results`` (plus its ``files``) as JSON to ``output`` (*.json) and, beside
    it, a PNG of ``series`` (val top-1 % per epoch) with a dashed line at the sync-blind
    ``optimum``; returns the files. Shared by the ``probe`` and ``oracle`` programs."""
    from rstg_tf import plots
    from rstg_tf.data.atomic import atomic_write_text

    png = output[:-len(".json")] + ".png"
    results["files"] = {"json": output, "png": png}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    plots.line_chart(series, png, title, x_label=x_label, y_label="val top-1 %",
                     legend_outside=legend_outside,
                     levels={f"sync-blind optimum {100 * optimum['top1']:.1f} %":
                             100 * optimum["top1"]})
    atomic_write_text(output, json.dumps(results, indent=1) + "\n")
    return results["files"]


def _split_features(data_dir, split, config, backbone_weights, max_videos, verbose):
    from rstg_tf.data import pipeline, syncmnist_records

    _, counts, _ = pipeline.split_files(data_dir, split)
    count = min(sum(counts), max_videos or sum(counts))
    data = syncmnist_records.dataset(data_dir, split, 64, with_digits=True)
    num_digits = int(data.element_spec[2].shape[-1])
    data = data.unbatch().take(count).batch(64).map(lambda x, y, d: (x, y))
    if verbose:
        print(f"{split}: features of {count} clips")
    return backbone_maps(data, config, backbone_weights, count, verbose), num_digits


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


def run_probes(data_dir: str, backbone_weights: str, output: str, num_filters: int = 512,
               probes: Sequence[str] = tuple(PROBES), epochs: int = 7,
               steps_per_epoch: int = 300, batch_size: int = 16, learning_rate: float = 1e-3,
               max_videos: Optional[int] = None, rows_dir: Optional[str] = None,
               seed: int = 0, verbose: int = 1) -> Dict[str, str]:
    """``probes`` on the frozen ``num_filters``-filter backbone ``backbone_weights``, on
    the train and val shards of ``data_dir`` (the first ``max_videos`` of each); writes
    ``output`` (JSON: each probe's per-epoch history, the sync-blind optimum) and a PNG of
    val top-1 per epoch beside it, with each row's of the Table 1 work dir ``rows_dir``.
    Returns the files (``python -m experiments.sync_pair.probe``; ``python -m train.table``
    runs it after its rows)."""
    if not output.endswith(".json"):
        raise ValueError(f"--output must name a .json file; got {output!r}.")
    if not os.path.exists(backbone_weights):
        raise FileNotFoundError(f"--backbone_weights {backbone_weights} does not exist.")
    rows = _rows_curves(rows_dir) if rows_dir else {}
    config = ModelConfig(num_filters=num_filters)
    train, num_digits = _split_features(data_dir, "train", config, backbone_weights,
                                        max_videos, verbose)
    val, _ = _split_features(data_dir, "val", config, backbone_weights, max_videos, verbose)
    optimum = sync_blind_optimum(num_digits)
    results = {"data_dir": data_dir, "backbone_weights": backbone_weights,
               "num_filters": num_filters, "num_digits": num_digits,
               "train_videos": len(train[1]), "val_videos": len(val[1]),
               "epochs": epochs, "steps_per_epoch": steps_per_epoch,
               "batch_size": batch_size, "learning_rate": learning_rate,
               "sync_blind_optimum": optimum, "probes": {}}
    kinds = list(dict.fromkeys(probes))
    train_inputs = all_probe_inputs(kinds, train[0], config)
    val_inputs = all_probe_inputs(kinds, val[0], config)
    for kind in kinds:
        history = run_probe(kind, (train_inputs[kind], train[1]), (val_inputs[kind], val[1]),
                            config.num_classes, epochs, steps_per_epoch, batch_size,
                            learning_rate, seed, verbose=verbose)
        results["probes"][kind] = history
        print(f"probe {kind}: val top-1 {100 * history['val_top1'][-1]:.1f}%, val loss "
              f"{history['val_loss'][-1]:.3f} after {epochs} x {steps_per_epoch} steps "
              f"(sync-blind optimum {100 * optimum['top1']:.1f}% at {optimum['loss']:.3f})")
    series = {f"probe {k}": [100 * v for v in h["val_top1"]]
              for k, h in results["probes"].items()}
    series.update(rows)
    results["rows_val_top1"] = rows
    return write_val_top1_report(
        results, output, series, f"Val top-1: sync-blind probes of the frozen "
        f"{num_filters}-filter backbone ({num_digits} digits)",
        f"epoch ({steps_per_epoch} steps of {batch_size})", optimum, legend_outside=True)
