"""How large a model's training gradients are, per batch and per part of the model.

For batches of labelled clips, the gradient of the training loss (``compile_model``'s:
sparse categorical cross-entropy from logits, the batch mean) with respect to every
trainable weight, in training mode as ``fit`` runs it (batch norms on the batch's
statistics, dropout on; the model's own state is left as it was)::

    global norm  = sqrt(sum over weights w of |dL/dw|^2)
    part norm    = the same sum over the weights of one part

A part is a weight's path up to the layer that owns it: the model's top-level layer
(``backbone``, ``classifier``), or inside the RSTG block its sub-layer (``rstg/space``,
``rstg/time_intern``, ``rstg/time_final``, ``rstg/project_in``, ...). The parts' squared
norms add up to the global one's.

``--clip_grad_norm=G`` (Keras' ``global_clipnorm``) rescales a batch's gradient whenever
its global norm is above G; ``clipped_share`` is how many of the batches it would rescale
here. Keras' optimizers see the same gradients (``fit`` differentiates the same loss).

``GradientNormLog`` adds the norms of a fixed set of training batches to every epoch's
logs (``grad_norm``: the median over the batches, ``grad_norm_max``), so that log.csv
shows how they move as the model trains.

The math is backend-neutral but differentiation is not: TensorFlow (``GradientTape``) and
JAX (``jax.grad`` of ``stateless_call``, jitted once per model), the two backends this project runs. Every batch
is differentiated from the same random state (dropout's masks are not advanced between
batches), and the two backends draw different masks: with dropout (0 in the SyncMNIST
configs) their norms agree only in distribution. The loss is not scaled: on a
``mixed_float16`` model, gradients too small for float16 read as 0 (Keras' loss-scale
optimizer would keep them).
"""

from __future__ import annotations

import weakref
from typing import Callable, Dict, List, Optional, Sequence

import keras
import numpy as np
from keras import ops

from rstg_tf.config import MAX_GRAD_NORM_BATCHES
from rstg_tf.training.config import check_clip_grad_norm, check_grad_norm_batches

Gradients = Callable[[keras.Model, np.ndarray, np.ndarray], List[np.ndarray]]


def _loss(labels, logits):
    """The trainer's loss: mean sparse categorical cross-entropy from float32 logits."""
    logits = ops.cast(logits, "float32")
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits,
                                                                 from_logits=True))


def _tensorflow_gradients(model, clips, labels):
    import tensorflow as tf

    # a training-mode call moves the batch norms' statistics: put them back, so that the
    # model is left as it was (as JAX's stateless call leaves it)
    kept = [v.numpy() for v in model.non_trainable_variables]
    with tf.GradientTape() as tape:
        loss = _loss(labels, model(clips, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    for variable, value in zip(model.non_trainable_variables, kept):
        variable.assign(value)
    # a weight the loss does not reach has no gradient (JAX gives zeros)
    return [np.zeros(v.shape, "float32") if g is None else np.asarray(g)
            for g, v in zip(grads, model.trainable_variables)]


# model -> its jitted gradient function (JAX runs an unjitted one op by op: seconds a
# batch on a GPU); weak, so that a model's compiled function goes with it
_JAX_GRADIENTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _jax_gradients(model, clips, labels):
    import jax

    if model not in _JAX_GRADIENTS:
        owner = weakref.ref(model)      # a strong one here would keep the entry forever

        def loss(trainable, non_trainable, x, y):
            logits, _ = owner().stateless_call(trainable, non_trainable, x, training=True)
            return _loss(y, logits)

        _JAX_GRADIENTS[model] = jax.jit(jax.grad(loss))
    grads = _JAX_GRADIENTS[model]([v.value for v in model.trainable_variables],
                                  [v.value for v in model.non_trainable_variables],
                                  clips, labels)
    return [np.asarray(g) for g in grads]


GRADIENTS: Dict[str, Gradients] = {"tensorflow": _tensorflow_gradients,
                                   "jax": _jax_gradients}


def loss_gradients(model: keras.Model, clips, labels) -> List[np.ndarray]:
    """dL/dw for each of ``model.trainable_variables`` (in that order), NumPy.

    Args:
      model: a built Keras model of clips -> logits [B, classes].
      clips: its input batch (uint8 [B, T, H, W, C] for the SyncMNIST models).
      labels: int [B] class indices.

    Raises:
      ValueError: the backend cannot differentiate here, or clips and labels disagree.
    """
    backend = keras.backend.backend()
    if backend not in GRADIENTS:
        raise ValueError(f"gradient norms are computed under {sorted(GRADIENTS)}; the Keras "
                         f"backend is {backend!r}.")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(clips):
        raise ValueError(f"labels must be [batch] with one label per clip ({len(clips)}); "
                         f"got shape {labels.shape}.")
    classes = int(model.output_shape[-1])
    if len(labels) and not 0 <= labels.min() <= labels.max() < classes:
        raise ValueError(f"labels must be in 0..{classes - 1} (the model's classes); got "
                         f"{labels.min()}..{labels.max()}.")
    return GRADIENTS[backend](model, clips, labels.astype("int32"))


def weight_part(path: str, block_names: Sequence[str] = ("rstg",)) -> str:
    """The part a weight's path belongs to: ``backbone/conv0/kernel`` -> ``backbone``,
    ``rstg/space/send2/kernel`` -> ``rstg/space``, ``rstg/time_final/bias`` ->
    ``rstg/time_final`` (the second level inside the blocks ``block_names``)."""
    names = path.split("/")
    depth = 2 if names[0] in block_names and len(names) > 2 else 1
    return "/".join(names[:depth])


def _global_norm(grads) -> float:
    return float(np.sqrt(sum(np.sum(np.square(g.astype(np.float64))) for g in grads)))


def gradient_norms(model: keras.Model, clips, labels, batch_size: int,
                   clip_grad_norm: Optional[float] = None,
                   block_names: Sequence[str] = ("rstg",)) -> Dict[str, object]:
    """The loss gradient's global and per-part L2 norms on consecutive batches.

    Args:
      model: a built Keras clip classifier (trainable variables with paths).
      clips: [N, ...] inputs; the first ``N // batch_size`` whole batches are used.
      labels: int [N].
      batch_size: clips per batch, >= 1 and <= N.
      clip_grad_norm: a ``--clip_grad_norm`` to count the batches it would rescale.
      block_names: top-level layers whose parts are their sub-layers.

    Returns:
      A JSON-ready dict: batches, batch_size, global (per batch), global_median,
      global_max, parts ({part: per-batch norms}, in the order of the model's weights),
      part_median ({part: median}), clip_grad_norm and clipped_share (None without it).
    """
    if not 1 <= batch_size <= len(clips):
        raise ValueError(f"batch_size must be in 1..{len(clips)} (the clips given); "
                         f"got {batch_size}.")
    check_clip_grad_norm(clip_grad_norm)
    parts = [weight_part(v.path, block_names) for v in model.trainable_variables]
    names = list(dict.fromkeys(parts))
    batches = len(clips) // batch_size
    total, per_part = [], {name: [] for name in names}
    for b in range(batches):
        rows = slice(b * batch_size, (b + 1) * batch_size)
        grads = loss_gradients(model, clips[rows], np.asarray(labels)[rows])
        total.append(_global_norm(grads))
        for name in names:
            per_part[name].append(_global_norm([g for g, p in zip(grads, parts) if p == name]))
    clipped = (None if clip_grad_norm is None
               else float(np.mean([n > clip_grad_norm for n in total])))
    return {"batches": batches, "batch_size": int(batch_size), "global": total,
            "global_median": float(np.median(total)), "global_max": float(np.max(total)),
            "parts": per_part,
            "part_median": {name: float(np.median(v)) for name, v in per_part.items()},
            "clip_grad_norm": clip_grad_norm, "clipped_share": clipped}


def markdown_table(results: Dict[str, Dict[str, object]]) -> str:
    """One row per entry of ``results`` ({row name: ``gradient_norms``' dict}): the global
    norm's median and largest over the batches, each part's median, and with a clip the
    share of batches it rescales."""
    parts = list(dict.fromkeys(p for r in results.values() for p in r["part_median"]))
    clip = any(r["clip_grad_norm"] is not None for r in results.values())
    head = ["row", "batches", "grad norm median", "grad norm max"] + [
        f"{p} median" for p in parts] + (["clipped share"] if clip else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        values = [r["global_median"], r["global_max"]] + [
            r["part_median"].get(p) for p in parts]
        cells = [str(r["batches"])] + ["-" if v is None else f"{v:.3g}" for v in values]
        if clip:
            cells.append("-" if r["clipped_share"] is None else f"{r['clipped_share']:.0%}")
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines)


class GradientNormLog(keras.callbacks.Callback):
    """Adds ``grad_norm`` (the median over the first ``batches`` training batches of the loss
    gradient's global norm) and ``grad_norm_max`` to each epoch's logs, after the epoch's
    last step. The model, its batch norms' statistics and its random state are left as
    they were, so a run trains the same with or without it.

    Put it before the callbacks that read or write the logs (CSVLogger, checkpoints).

    Args:
      clips: [N, ...] training inputs, N >= batch_size (the first ``batches`` whole
        batches are used, fewer if N holds fewer).
      labels: int [N].
      batch_size: clips per batch (the run's).
      batches: 1..``MAX_GRAD_NORM_BATCHES`` (16).
    """

    def __init__(self, clips, labels, batch_size: int, batches: int = MAX_GRAD_NORM_BATCHES):
        super().__init__()
        check_grad_norm_batches(batches)
        if len(clips) != len(labels):
            raise ValueError(f"GradientNormLog needs one label per clip; got {len(clips)} "
                             f"clips and {len(labels)} labels.")
        count = min(len(clips) // batch_size, batches) * batch_size
        if count < 1:
            raise ValueError(f"GradientNormLog needs at least one batch of {batch_size} "
                             f"clips; got {len(clips)}.")
        self.clips, self.labels = clips[:count], np.asarray(labels)[:count]
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        norms = gradient_norms(self.model, self.clips, self.labels, self.batch_size)
        if logs is not None:
            logs["grad_norm"] = norms["global_median"]
            logs["grad_norm_max"] = norms["global_max"]
