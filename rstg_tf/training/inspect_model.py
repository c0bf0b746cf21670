"""A model's start at a glance, without training (``python -m train.inspect``).

For an RSTG clip classifier (``rstg_tf.models.build_model``), on a batch of clips:

  * the RMS of the node states after each stage of the block: the backbone's features,
    the encoded nodes (input batch norm, projection, norm), each iteration's time and
    space stage, the final stage and the read-out;
  * the read-out's spread across clips: the std over the batch of the block's pooled
    output [B, D'] and of the logits [B, classes], each averaged over its features;
  * the sensitivity to one node's input: the encoded nodes of graph node ``node`` get a
    small random change (``eps`` times their own norm, over all frames and clips) and a
    central finite difference gives |d read-out| / |d input| (Frobenius norms);
    ``cross_node_share`` is the part of the final nodes' response that lies outside the
    perturbed node (0 when the nodes do not talk, as in Time-only).

An input-blind start (the read-out nearly the same for every clip) shows as a small
spread and sensitivity. The stages are the block's own methods (``encode``,
``_time_sequence``, ``_space``, ``_finish``), run one by one in the ``layerwise`` order;
``consistency`` is their read-out's largest difference from the block's own output,
relative to its scale (0 in the layerwise clip mode, float32 rounding in the framewise
one; more means the two have drifted apart).

Backend-neutral: ``keras.ops`` and NumPy only.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import keras
import numpy as np
from keras import ops

from rstg_tf.layers.rstg import RSTG

# The derivative at the inputs to ~1 % at the SyncMNIST models' start: 1e-4 and 1e-5 give
# the same to 3 digits, float32's rounding shows below (~15 % at 1e-6), and 5e-2 is ~20 %
# off, as saturated LSTM gates bend the response. The central difference keeps the
# step's curvature out to second order.
DEFAULT_EPS = 1e-3

Stage = Tuple[str, Callable]


def rstg_block(model: keras.Model) -> RSTG:
    """The RSTG block of ``model``; ValueError naming the model if it has none."""
    blocks = [layer for layer in model.layers if isinstance(layer, RSTG)]
    if len(blocks) != 1:
        raise ValueError(f"model {model.name!r} is not an RSTG clip classifier (its layers: "
                         f"{[layer.name for layer in model.layers]}); inspect_model reads "
                         "models with one RSTG block.")
    block = blocks[0]
    if block.config.readout == "map":
        raise ValueError(f"model {model.name!r}: the RSTG-to-map read-out is not a clip "
                         "vector; inspect_model reads 'mean_time' and 'last_step'.")
    return block


def block_stages(block: RSTG) -> List[Stage]:
    """The block's stages after ``encode``, in ``_layerwise``'s order: (name, fn), each
    fn mapping time-major nodes [T, B, N, D] to [T, B, N, D]."""

    def time(key):
        return lambda x: block._time_sequence(key, x, False)

    def time_mean(x):                     # space_only's final stage, on every frame
        return ops.broadcast_to(ops.mean(x, axis=0, keepdims=True), ops.shape(x))

    stages = []
    for i in range(block.config.num_iterations):
        if block.time_inside:
            stages.append((f"time{i}", time(f"t{i}")))
        if block.has_space:
            stages.append((f"space{i}", lambda x: block._space(x, False)))
    return stages + [("final", time("final") if block.final == "time" else time_mean)]


def _read_out(block: RSTG, final):
    """Final nodes [T, B, N, D] -> the block's output [B, D'] (as ``RSTG.call``)."""
    y = block._finish(final)
    if block.config.readout == "last_step":
        return ops.sum(y[-1], axis=1)
    return ops.sum(ops.mean(y, axis=0), axis=1)


def run_stages(block: RSTG, nodes, stages: List[Stage]):
    """Runs ``stages`` from encoded nodes [T, B, N, D].

    Returns:
      (the outputs [(name, [T, B, N, D])] in order, read-out [B, D']).
    """
    outputs, x = [], nodes
    for name, stage in stages:
        x = stage(x)
        outputs.append((name, x))
    return outputs, _read_out(block, x)


def _numpy(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(_numpy(x)))))


def _spread(x) -> float:
    """x [B, F] -> std over the batch, averaged over F."""
    return float(np.mean(np.std(_numpy(x), axis=0)))


def _node_perturbation(nodes: np.ndarray, node: int, eps: float, seed: int) -> np.ndarray:
    """A random change of node ``node``'s inputs of norm ``eps`` * theirs; zero elsewhere."""
    delta = np.zeros_like(nodes)
    direction = np.random.default_rng(seed).standard_normal(nodes[:, :, node].shape)
    scale = np.linalg.norm(nodes[:, :, node]) / np.linalg.norm(direction)
    delta[:, :, node] = eps * scale * direction
    return delta


def node_sensitivity(block: RSTG, nodes, node: int = 0, eps: float = DEFAULT_EPS,
                     seed: int = 0, stages: Optional[List[Stage]] = None) -> Dict[str, float]:
    """|d read-out| / |d input| for a random change of node ``node``'s encoded input.

    Args:
      block: a built RSTG block.
      nodes: encoded nodes [T, B, N, D] (``block.encode``).
      node: the perturbed graph node (0: the top-left cell of the finest grid).
      eps: the change's norm relative to the node's input norm (over T, B, D).
      seed: the change's random direction.
      stages: ``block_stages(block)`` if already made.

    Returns:
      sensitivity (central difference, Frobenius norms over the batch) and
      cross_node_share (the norm of the final nodes' change outside ``node`` over the
      norm of all of it; 0 when no change reaches the final nodes).
    """
    num_nodes = block.graph.num_nodes
    if not 0 <= node < num_nodes:
        raise ValueError(f"node must be in 0..{num_nodes - 1}; got {node}.")
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}.")
    stages = stages or block_stages(block)
    base = ops.convert_to_numpy(nodes)
    delta = _node_perturbation(base, node, eps, seed).astype(base.dtype)
    results = []
    for sign in (1, -1):
        outputs, readout = run_stages(block, ops.convert_to_tensor(base + sign * delta), stages)
        results.append((_numpy(outputs[-1][1]), _numpy(readout)))
    d_final = results[0][0] - results[1][0]
    d_readout = (results[0][1] - results[1][1]) / 2
    d_input = np.linalg.norm(delta.astype(np.float64))
    total = np.linalg.norm(d_final)
    others = np.linalg.norm(np.delete(d_final, node, axis=2))
    return {"sensitivity": float(np.linalg.norm(d_readout) / d_input),
            "cross_node_share": float(others / total) if total > 0 else 0.0}


def inspect_model(model: keras.Model, clips, node: int = 0, eps: float = DEFAULT_EPS,
                  seed: int = 0) -> Dict[str, object]:
    """Activation scale per stage, read-out spread and node sensitivity of ``model``.

    Args:
      model: an RSTG clip classifier (``build_model``, or a loaded checkpoint), at
        inference (batch norms use their moving statistics: identity at initialisation).
      clips: uint8 [B, T, H, W, C], B >= 2.
      node, eps, seed: the perturbation (``node_sensitivity``).

    Returns:
      A JSON-ready dict: model, schedule, norm, num_clips, stage_rms ({stage: RMS} in
      order: features, nodes, time{k} / space{k}, final, readout), readout_spread,
      logits_spread, sensitivity, cross_node_share, consistency, node, eps.

    Raises:
      ValueError: ``model`` is not an RSTG clip classifier, or bad clips / node / eps.
    """
    block = rstg_block(model)
    clips = np.asarray(clips)
    if clips.ndim != 5 or len(clips) < 2:
        raise ValueError(f"clips must be [batch >= 2, T, H, W, C]; got shape {clips.shape}.")
    features = keras.Model(model.input, block.input)(clips, training=False)
    features = ops.cast(features, block.compute_dtype)
    logits = model(clips, training=False)
    nodes = block.encode(features, training=False)
    stages = block_stages(block)
    outputs, readout = run_stages(block, nodes, stages)
    own = _numpy(block(features, training=False))
    drift = np.max(np.abs(_numpy(readout) - own)) / max(np.max(np.abs(own)), 1e-30)
    rms = {"features": _rms(features), "nodes": _rms(nodes)}
    rms.update((name, _rms(x)) for name, x in outputs)
    rms["readout"] = _rms(readout)
    c = block.config
    return {"model": model.name, "schedule": c.schedule, "norm": c.norm,
            "num_clips": int(len(clips)), "stage_rms": rms,
            "readout_spread": _spread(readout), "logits_spread": _spread(logits),
            **node_sensitivity(block, nodes, node, eps, seed, stages),
            "consistency": float(drift), "node": int(node), "eps": float(eps)}


def _stage_order(name: str) -> Tuple[int, int]:
    """features, nodes, time0, space0, time1, ..., final, readout."""
    fixed = {"features": (0, 0), "nodes": (1, 0), "final": (3, 0), "readout": (4, 0)}
    if name in fixed:
        return fixed[name]
    space = name.startswith("space")
    return 2, 2 * int(name[5:] if space else name[4:]) + space


def markdown_table(results: Dict[str, Dict[str, object]]) -> str:
    """One row per entry of ``results`` ({row name: ``inspect_model``'s dict}): the RMS
    after each stage, read-out and logits spread, sensitivity, cross-node share."""
    stages = sorted({s for r in results.values() for s in r["stage_rms"]}, key=_stage_order)
    head = ["row"] + [f"rms {s}" for s in stages] + [
        "readout spread", "logits spread", "sensitivity", "cross-node"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        values = [r["stage_rms"].get(s) for s in stages] + [
            r["readout_spread"], r["logits_spread"], r["sensitivity"], r["cross_node_share"]]
        cells = ["-" if v is None else f"{v:.3g}" for v in values]
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines)
