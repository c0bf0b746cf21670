"""Does a results table find the synchronous pair, and keep the paper's order, beyond test-set noise?

A quick table is scored on ~1,000 test clips, so two rows 1 point apart may be the same
model; these helpers put the binomial standard error beside every claim the Table 1
runner makes.

* ``sync_verdict``: a row's sync-pair accuracy (``rstg_tf.data.syncmnist``) against
  what a sync-blind model scores (one that knows the digits, not which pair is
  synchronous: 1/3 on 3SyncMNIST), in standard errors ``sqrt(p0 (1 - p0) / n)`` of that
  chance rate ``p0``. Above it, a model has read the pair's shared motion or its constant
  offset (see ``sync_pair_accuracy``).
* ``paper_order``: every pair of our rows that the paper separates by at least
  ``min_gap`` points, with our top-1 difference in standard errors of a difference of two
  independent proportions, ``sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)`` (the rows share a
  test set, so this is conservative: their errors are correlated).

* ``probe_summary``: the line table.md gives the sync-blind probes of the same frozen
  backbone (``python -m train.probe``'s JSON), when the work dir has one.

* ``prediction_fields`` / ``collapse_note``: how many classes the model's top-1 uses on
  the test clips; a model that gives every clip the same class has an output that does not
  depend on its input (a collapsed run, e.g. dead ReLUs), which "at chance" alone hides.

Pure Python; results are the dicts ``python -m train.evaluate`` and the in-memory trainer
write (``top1``, ``num_videos``, ``sync_pair_top1``, ``sync_pair_videos``,
``sync_pair_chance``, ``predicted_classes``; older results name the chance rate
``motion_blind_sync_pair``, which is read too).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

# |difference| / standard error needed to call a difference real (~95 % two-sided).
Z_THRESHOLD = 2.0


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


def sync_verdict(result: Mapping[str, object], z: float = Z_THRESHOLD) -> Optional[str]:
    """A short note on whether ``result``'s sync-pair accuracy is beyond chance (None
    without a sync-pair figure, as ``sync_pair_z``)."""
    k = sync_pair_z(result)
    if k is None:
        return None
    blind = float(result.get("sync_pair_chance", result.get("motion_blind_sync_pair")))
    if k >= z:
        return f"finds the sync pair: {k:+.1f} s.e. above its chance {100 * blind:.0f} %"
    if k <= -z:
        return f"sync-blind: sync pair {k:+.1f} s.e. below {100 * blind:.0f} %"
    return f"sync-blind: sync pair within {z:g} s.e. of {100 * blind:.0f} % ({k:+.1f})"


def prediction_fields(top1_classes: Iterable[int]) -> Dict[str, object]:
    """Result fields on the model's top-1 classes over the test clips:
    ``predicted_classes`` (how many distinct classes) and ``top_class_share`` (the share of
    clips given the most frequent one)."""
    counts = collections.Counter(int(c) for c in top1_classes)
    if not counts:
        raise ValueError("prediction_fields needs at least one prediction.")
    return {"predicted_classes": len(counts),
            "top_class_share": max(counts.values()) / sum(counts.values())}


def collapse_note(result: Mapping[str, object]) -> Optional[str]:
    """'predicts one class for every clip' when the result says so (``predicted_classes``
    is 1 over more than one clip), else None (also for results without the field)."""
    if result.get("predicted_classes") == 1 and int(result.get("num_videos") or 0) > 1:
        return "predicts one class for every clip (its output ignores the input)"
    return None


def probe_summary(report: Mapping[str, object], num_digits: int) -> Tuple[str, float]:
    """table.md's line on the sync-blind probes of the same frozen backbone, from the JSON
    ``python -m train.probe`` writes, and the best probe's last val top-1 (%).

    Raises ValueError naming what is wrong when ``report`` is not such a JSON for
    ``num_digits``-digit clips.
    """
    if not isinstance(report, Mapping) or not isinstance(report.get("probes"), Mapping):
        raise ValueError("not a train.probe report (no 'probes').")
    if report.get("num_digits") != num_digits:
        raise ValueError(f"its probes read {report.get('num_digits')}-digit clips, not "
                         f"{num_digits}-digit ones.")
    last = {}
    for kind, history in report["probes"].items():
        top1 = history.get("val_top1") if isinstance(history, Mapping) else None
        if not isinstance(top1, list) or not top1:
            raise ValueError(f"probe {kind!r} has no val_top1 history.")
        last[kind] = 100 * float(top1[-1])
    if not last:
        raise ValueError("it has no probes.")
    steps = (f"{report.get('epochs')} x {report.get('steps_per_epoch')} steps of "
             f"{report.get('batch_size')}")
    figures = ", ".join(f"`{k}` {v:.1f} %" for k, v in last.items())
    line = (f"Sync-blind probes (`python -m train.probe`: small readers that cannot find the "
            f"pair, on the frozen {report.get('num_filters')}-filter backbone of "
            f"`{report.get('backbone_weights')}`, {steps}): val top-1 {figures} on "
            f"{report.get('val_videos')} test videos of `{report.get('data_dir')}`. A row at "
            "or under them has read no more from those features than a reader blind to the "
            "pair.")
    return line, max(last.values())


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

    def describe(self, names: Optional[Mapping[str, str]] = None) -> str:
        names = names or {}
        hi, lo = names.get(self.higher, self.higher), names.get(self.lower, self.lower)
        return (f"{hi} > {lo} (paper +{self.paper_gap:.1f}): ours {self.ours_gap:+.1f} "
                f"points, {self.z:+.1f} s.e.: **{self.verdict}**")


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
