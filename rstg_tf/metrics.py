"""Scores of a clip classifier's predictions: top-k, SyncMNIST's pair scores, the spread of
its predictions, and differences of accuracies in standard errors. Pure NumPy / Python.

* ``top_k_accuracy``: how often the label is among the ``k`` highest logits.
* ``sync_pair_accuracy`` / ``present_pair_accuracy`` / ``sync_pair_fields``: SyncMNIST's
  top-1 split into its two skills, seeing which pair is synchronous and recognising the
  digits (result fields ``sync_pair_top1``, ``sync_pair_videos``, ``sync_pair_chance``,
  ``present_pair_top1``).
* ``prediction_fields``: how many classes the model's top-1 uses (a model that gives every
  clip the same class has an output that does not depend on its input).
* ``sync_pair_z``: a result's sync-pair accuracy above what a sync-blind model scores (one
  that knows the digits, not which pair is synchronous: 1/3 on 3SyncMNIST), in standard
  errors ``sqrt(p0 (1 - p0) / n)`` of that chance rate ``p0``; ``first_past`` finds the
  first epoch of a per-epoch z curve past ``LEAVE_Z``, where a run has left sync-blind.
* ``paper_order`` / ``order_summary``: every pair of rows that a reference table separates
  by at least ``min_gap`` points, with our top-1 difference in standard errors of a
  difference of two independent proportions, ``sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)``
  (rows scored on one test set are correlated, so this is conservative).

Results are the dicts ``python -m train.evaluate`` and the in-memory trainer write
(``top1``, ``num_videos``, ``sync_pair_top1``, ``sync_pair_videos``, ``sync_pair_chance``;
older results name the chance rate ``motion_blind_sync_pair``, which is read too).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from rstg_tf.data.syncmnist import NO_SYNC_LABEL, NUM_CLASSES, PAIR_LABELS

# |difference| / standard error needed to call a difference real (~95 % two-sided).
Z_THRESHOLD = 2.0
# Standard errors above sync-blind at which a run's val sync pair counts as having left
# the sync-blind level (a stricter bar than Z_THRESHOLD: it is read off every epoch).
LEAVE_Z = 5.0


def top_k_accuracy(logits, labels, k: int = 1) -> float:
    """The share of rows of ``logits`` [N, classes] whose label [N] is among their ``k``
    highest logits (ties broken by class order)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    ranked = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(ranked == labels[:, None], axis=1)))


_PAIR_TABLE = np.full((10, 10), -1, np.int64)   # PAIR_LABELS as [a, b] -> label, -1 for a == b
for (_a, _b), _label in PAIR_LABELS.items():
    _PAIR_TABLE[_a, _b] = _label


def _synced_candidates(logits, digits, labels):
    """The clips with a synchronous pair: (logits, labels, candidates [N, pairs]: the
    labels of the pairs of each clip's digits), after checking the shapes."""
    logits, digits, labels = np.asarray(logits), np.asarray(digits), np.asarray(labels)
    if logits.ndim != 2 or logits.shape[1] != NUM_CLASSES:
        raise ValueError(f"logits must be [N, {NUM_CLASSES}]; got shape {logits.shape}.")
    if digits.ndim != 2 or digits.shape[1] < 2 or labels.shape != (len(logits),) or \
            len(digits) != len(logits):
        raise ValueError(f"digits must be [N, D >= 2] and labels [N] for N = {len(logits)} "
                         f"clips; got shapes {digits.shape} and {labels.shape}.")
    keep = labels != NO_SYNC_LABEL
    logits, digits, labels = logits[keep], digits[keep], labels[keep]
    first, second = np.triu_indices(digits.shape[1], 1)
    candidates = _PAIR_TABLE[digits[:, first], digits[:, second]]     # [N, pairs]
    if (candidates < 0).any() or not (candidates == labels[:, None]).any(axis=1).all():
        raise ValueError("each clip's digits must be distinct classes 0-9 that include "
                         "its labelled pair.")
    return logits, labels, candidates


def sync_pair_accuracy(logits, digits, labels) -> Tuple[Optional[float], int]:
    """Sync accuracy: how often the synchronous pair outscores the other present pairs.

    Top-1 mixes two skills: recognising which digits are in a clip and seeing which two
    of them are synchronous. This scores only the second (``present_pair_accuracy`` the
    first). For each clip with a synchronous pair, the candidates are the pairs of its
    ``D`` digits (all distinct); the clip counts as right when the model's logit for the
    true pair is strictly above every other candidate's (ties count as wrong). A model
    that knows the digits but not which pair is synchronous (sync-blind) scores
    ``1 / (D * (D - 1) / 2)``: 1/3 on 3SyncMNIST, 1/10 on 5SyncMNIST, the metric's chance
    level.

    The pair shows itself two ways: it moves by the same step on every frame (motion, read
    in frame order), and so keeps one offset between its two digits in every frame, which
    no other pair does (read without frame order: how the paper's Space-only, whose nodes
    are averaged over time, reaches 61.3 % on 3SyncMNIST).

    Args:
      logits: float [N, 46].
      digits: int [N, D], each clip's digit classes (the record's ``syncmnist/digits``).
      labels: int [N]; clips of the no-sync class are left out.

    Returns:
      (accuracy, or None when no clip has a synchronous pair; clips counted).
    """
    return _sync_pair(*_synced_candidates(logits, digits, labels))


def _sync_pair(logits, labels, candidates) -> Tuple[Optional[float], int]:
    if not len(labels):
        return None, 0
    scores = np.take_along_axis(logits, candidates, axis=1)
    others = np.where(candidates == labels[:, None], -np.inf, scores)
    correct = logits[np.arange(len(labels)), labels] > others.max(axis=1)
    return float(correct.mean()), int(len(labels))


def present_pair_accuracy(logits, digits, labels) -> Optional[float]:
    """How often the model's top-1 class is a pair of digits the clip has: the digit
    recognition part of top-1, over the clips ``sync_pair_accuracy`` counts (None when
    there are none). Top-1 is about this times the sync-pair accuracy; a model that knows
    the digits scores 1."""
    return _present_pair(*_synced_candidates(logits, digits, labels))


def _present_pair(logits, labels, candidates) -> Optional[float]:
    if not len(labels):
        return None
    return float((candidates == np.argmax(logits, axis=1)[:, None]).any(axis=1).mean())


def sync_pair_fields(logits, digits, labels) -> Dict[str, object]:
    """``sync_pair_accuracy`` and ``present_pair_accuracy`` as result fields:
    ``sync_pair_top1``, ``sync_pair_videos``, ``sync_pair_chance`` (what a sync-blind model
    scores) and ``present_pair_top1``."""
    synced = _synced_candidates(logits, digits, labels)        # checked and built once
    accuracy, count = _sync_pair(*synced)
    num_digits = np.shape(digits)[1]
    return {"sync_pair_top1": accuracy, "sync_pair_videos": count,
            "sync_pair_chance": 2.0 / (num_digits * (num_digits - 1)),
            "present_pair_top1": _present_pair(*synced)}


def prediction_fields(top1_classes: Iterable[int]) -> Dict[str, object]:
    """Result fields on the model's top-1 classes over the test clips:
    ``predicted_classes`` (how many distinct classes) and ``top_class_share`` (the share of
    clips given the most frequent one)."""
    counts = collections.Counter(int(c) for c in top1_classes)
    if not counts:
        raise ValueError("prediction_fields needs at least one prediction.")
    return {"predicted_classes": len(counts),
            "top_class_share": max(counts.values()) / sum(counts.values())}


def _z(difference: float, variance: float) -> float:
    if variance <= 0:
        return math.copysign(math.inf, difference) if difference else 0.0
    return difference / math.sqrt(variance)


def sync_pair_z(result: Mapping[str, object]) -> Optional[float]:
    """``result``'s sync-pair accuracy above its sync-blind chance, in standard errors of
    that chance rate; None when the result has no sync-pair figure (no clip with a
    synchronous pair, or a result written before that field existed)."""
    sync, count = result.get("sync_pair_top1"), result.get("sync_pair_videos") or 0
    blind = result.get("sync_pair_chance", result.get("motion_blind_sync_pair"))
    if sync is None or blind is None or count <= 0:
        return None
    return _z(float(sync) - float(blind), float(blind) * (1 - float(blind)) / count)


def first_past(curve: Iterable[Optional[float]], threshold: float = LEAVE_Z) -> Optional[int]:
    """Index of the first value of ``curve`` above ``threshold`` (None values and NaN are
    never above it); None when there is none. With a per-epoch ``val_sync_pair_z`` curve:
    the epoch (0-based) after which the run had left the sync-blind level."""
    for i, value in enumerate(curve):
        if value is not None and value > threshold:
            return i
    return None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The paper ranks ``higher`` above ``lower`` by ``paper_gap`` points; ours by
    ``ours_gap`` points (top-1), ``z`` standard errors."""

    higher: str
    lower: str
    paper_gap: float
    ours_gap: float
    z: float
    threshold: float = Z_THRESHOLD

    @property
    def verdict(self) -> str:
        """'holds', 'reversed' (beyond noise the other way) or 'within noise'."""
        if self.z >= self.threshold:
            return "holds"
        if self.z <= -self.threshold:
            return "reversed"
        return "within noise"


def paper_order(paper: Mapping[str, float], results: Mapping[str, Mapping[str, object]],
                min_gap: float = 5.0, z: float = Z_THRESHOLD) -> List[Comparison]:
    """Every pair of rows in ``results`` that ``paper`` (row -> accuracy %) separates by at
    least ``min_gap`` points, larger paper gaps first."""
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0; got {min_gap}.")
    rows = [r for r in paper if r in results]
    missing = [r for r in rows if "top1" not in results[r] or not results[r].get("num_videos")]
    if missing:
        raise ValueError(f"results for rows {missing} need 'top1' and 'num_videos'.")
    out = []
    for hi in rows:
        for lo in rows:
            gap = paper[hi] - paper[lo]
            if gap <= 0 or gap < min_gap:
                continue
            p1, n1 = float(results[hi]["top1"]), int(results[hi]["num_videos"])
            p2, n2 = float(results[lo]["top1"]), int(results[lo]["num_videos"])
            k = _z(p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
            out.append(Comparison(hi, lo, gap, 100 * (p1 - p2), k, z))
    return sorted(out, key=lambda c: (-c.paper_gap, c.higher, c.lower))


def order_summary(comparisons: List[Comparison]) -> Dict[str, int]:
    """How many comparisons hold, are reversed, or are within noise."""
    counts = {"holds": 0, "reversed": 0, "within noise": 0}
    for c in comparisons:
        counts[c.verdict] += 1
    return counts
