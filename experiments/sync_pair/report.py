"""Reading this package's JSON reports where no Keras is loaded: the sync-blind probes'
line in ``python -m train.table``'s table.md, and an oracle head's per-epoch history as a
run of ``python -m train.curves``."""

from __future__ import annotations

import json
import math
import os
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


def oracle_curves(path: str, schedule: str | None = None, label: str | None = None):
    """One head of a ``python -m experiments.sync_pair.oracle`` report as
    ``rstg_tf.training.curves.RunCurves``: its per-epoch history (loss, val top-1, val
    sync pair and its z, learning rate) on the report's step axis, so ``train.curves``
    draws oracle heads beside model directories. ``schedule`` may be left out when the
    report holds one head.

    Raises FileNotFoundError when ``path`` does not exist, ValueError naming the problem
    when it is not such a report, holds no ``schedule`` (or several and none was named)
    or has no epoch.
    """
    from rstg_tf.training.curves import RunCurves, step_axis_sizes

    if not os.path.isfile(path):
        raise FileNotFoundError(f"oracle report {path!r} does not exist.")
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not JSON ({e}).") from None
    heads = report.get("schedules") if isinstance(report, Mapping) else None
    if not isinstance(heads, Mapping) or not heads:
        raise ValueError(f"{path} is not a report of python -m experiments.sync_pair.oracle "
                         "(no 'schedules').")
    if schedule is None:
        if len(heads) > 1:
            raise ValueError(f"{path} holds the heads {', '.join(heads)}: name one as "
                             f"{path}#HEAD.")
        schedule = next(iter(heads))
    if schedule not in heads:
        raise ValueError(f"{path} has no head {schedule!r}; it has {', '.join(heads)}.")
    where = f"{path}#{schedule}"
    history = heads[schedule]
    top1 = history.get("val_top1") if isinstance(history, Mapping) else None
    if not isinstance(top1, list) or not top1:
        raise ValueError(f"{where} has no epoch in its val_top1 history.")
    columns = {"epoch": [float(i) for i in range(len(top1))]}
    for key, values in history.items():
        if isinstance(values, list) and len(values) == len(top1):
            try:
                columns[key] = [math.nan if v is None else float(v) for v in values]
            except (TypeError, ValueError):
                raise ValueError(f"{where}'s {key} history is not numbers.") from None
    steps_per_epoch, batch_size, epochs = step_axis_sizes(
        report, path, ("steps_per_epoch", "batch_size", "epochs"))
    return RunCurves(label or schedule, where, steps_per_epoch, batch_size, epochs, columns)
