"""The sync-blind probes' line in ``python -m train.table``'s table.md (pure Python: the
table's process loads no Keras for it)."""

from __future__ import annotations

from collections.abc import Mapping


def probe_summary(report, num_digits):
    """table.md's line on the sync-blind probes of the same frozen backbone, from the JSON
    ``python -m experiments.sync_pair.probe`` writes, and the best probe's last val top-1
    (%).

    Raises ValueError naming what is wrong when ``report`` is not such a JSON for
    ``num_digits``-digit clips.
    """
    if not isinstance(report, Mapping) or not isinstance(report.get("probes"), Mapping):
        raise ValueError("not an experiments.sync_pair.probe report (no 'probes').")
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
    line = (f"Sync-blind probes (`python -m experiments.sync_pair.probe`: small readers that "
            f"cannot find the pair, on the frozen {report.get('num_filters')}-filter backbone of "
            f"`{report.get('backbone_weights')}`, {steps}): val top-1 {figures} on "
            f"{report.get('val_videos')} test videos of `{report.get('data_dir')}`. A row at "
            "or under them has read no more from those features than a reader blind to the "
            "pair.")
    return line, max(last.values())
