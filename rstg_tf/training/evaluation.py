"""Evaluation of a trained model: top-1 / top-5, per-class accuracy, confusion matrix,
learning curves; JSON + PNG."""

from __future__ import annotations

import json
import os
from typing import Optional

import keras
import numpy as np

from rstg_tf import plots
from rstg_tf.data import syncmnist_records
from rstg_tf.data.atomic import atomic_write_text
from rstg_tf.data.syncmnist import label_name
from rstg_tf.metrics import prediction_fields, sync_pair_fields, top_k_accuracy
from rstg_tf.training.checkpoints import load_trained_model
from rstg_tf.training.run_log import read_log

def evaluate(model_dir: str, data_dir: str, split: str = "test", checkpoint: str = "best",
             batch_size: int = 32, max_videos: Optional[int] = None,
             output_dir: Optional[str] = None) -> dict:
    """Evaluates a model directory's checkpoint on a SyncMNIST split.

    Writes ``eval_<split>.json``, ``confusion_<split>.png`` and (from log.csv)
    ``learning_curves.png`` into ``output_dir`` (default ``model_dir``).

    Returns:
      The JSON fields: top1, top5, num_videos, per_class_accuracy, confusion, files, ...
    """
    model = load_trained_model(model_dir, checkpoint)
    data = syncmnist_records.dataset(data_dir, split, batch_size, training=False,
                                     with_digits=True)
    if max_videos:
        data = data.unbatch().take(max_videos).batch(batch_size)
    num_classes = int(model.output_shape[-1])
    labels, logits, digits = [], [], []
    progress = keras.utils.Progbar(None, unit_name="batch")
    for frames, label, clip_digits in data:
        logits.append(np.asarray(model.predict_on_batch(frames)))
        labels.append(np.asarray(label))
        digits.append(np.asarray(clip_digits))
        progress.add(1)
    labels, logits = np.concatenate(labels), np.concatenate(logits)
    motion = sync_pair_fields(logits, np.concatenate(digits), labels)
    predicted = np.argmax(logits, axis=1)
    top1, top5 = top_k_accuracy(logits, labels, 1), top_k_accuracy(logits, labels, 5)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(axis=1)
    per_class = {label_name(c) if num_classes == 46 else str(c):
                 (float(confusion[c, c] / support[c]) if support[c] else None)
                 for c in range(num_classes)}
    output_dir = output_dir or model_dir
    os.makedirs(output_dir, exist_ok=True)
    names = [label_name(c) for c in range(num_classes)] if num_classes == 46 else None
    files = [plots.heatmap(confusion, os.path.join(output_dir, f"confusion_{split}.png"),
                           f"{os.path.basename(os.path.abspath(model_dir))} on {split}: "
                           f"top-1 {100 * top1:.1f}%", labels=names)]
    log = read_log(model_dir)
    curves = {k: v for k, v in log.items() if k in ("top1", "val_top1", "top5", "val_top5")}
    if curves:
        files.append(plots.line_chart(curves, os.path.join(output_dir, "learning_curves.png"),
                                      "accuracy per epoch", y_label="accuracy"))
    results = {"model_dir": model_dir, "checkpoint": checkpoint, "data_dir": data_dir,
               "split": split, "num_videos": int(len(labels)), "top1": top1, "top5": top5,
               "chance": 1.0 / num_classes, **motion, **prediction_fields(predicted),
               "per_class_accuracy": per_class,
               "confusion": confusion.tolist(), "parameters": int(model.count_params()),
               "files": files}
    path = os.path.join(output_dir, f"eval_{split}.json")
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")
    results["files"].append(path)
    return results
