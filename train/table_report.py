"""table.md and table.png of ``python -m train.table``: our rows beside the paper's.

``write_table`` puts each row's test top-1 / top-5 / present pair / sync pair beside the
paper's figure (docs/reference_code.md §9) with its parameter count and a note (at chance,
collapsed, sync-blind or finding the pair, trained fewer epochs than planned), the
sync-blind probes' line when the work dir has a ``probe.json``, and the paper's order
checked pair by pair against test-set noise (the figures: ``rstg_tf.metrics``; the words
on them: here); then a bar chart.
"""

import json
import os

from rstg_tf import metrics

PAPER = {  # docs/reference_code.md §9, Table 1 (accuracy %).
    3: {"mean_lstm": 77.0, "conv_lstm": 95.0, "rstg_space_only": 61.3,
        "rstg_time_only": 89.7, "rstg_homogeneous": 95.7, "rstg_one_temp": 97.0,
        "rstg_all_temp": 98.9},
    5: {"conv_lstm": 39.7, "i3d": 90.6, "non_local": 93.5, "rstg_homogeneous": 58.3,
        "rstg_one_temp": 74.1, "rstg_all_temp": 94.5, "rstg_positional_all_temp": 97.2},
}


def epochs_note(model_dir):
    """'trained N of M epochs' when the row's log.csv stops short of its config.json's
    epochs (a time limit or TerminateOnNaN ended it); '' otherwise."""
    from rstg_tf.training.run_log import read_log

    epochs = read_log(model_dir).get("epoch")
    try:
        with open(os.path.join(model_dir, "config.json")) as fh:
            planned = int(json.load(fh)["epochs"])
    except (OSError, ValueError, KeyError):
        return ""
    done = int(max(epochs)) + 1 if epochs else 0
    return f"trained {done} of {planned} epochs" if epochs and done < planned else ""


def write_table(digits, budget, rows, results, work_dir):
    """Writes ``work_dir``/table.md and table.png from ``results`` (row -> its
    eval_test.json or result.json); returns table.md's path."""
    from rstg_tf import plots

    lines = [f"# Table 1, {digits}SyncMNIST, budget `{budget}`", "",
             "| model | val top-1 % | ours top-1 % | ours top-5 % | present pair % | sync pair % "
             "| paper % | parameters | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    chance = 100.0 / 46
    for row in rows:
        r = results.get(row)
        if r is None:           # never started, or paused (--whole_rows) before its end
            started = epochs_note(os.path.join(work_dir, row))
            val = _percent(val_top1({}, os.path.join(work_dir, row))) if started else ""
            status, note = ("paused", f"{started}; not tested yet") if started else ("not run", "")
            lines.append(f"| {row} | {val} | {status} | | | | {PAPER[digits][row]} | | {note} |")
            continue
        top1 = 100 * r["top1"]
        if top1 < 2 * chance:
            collapsed = collapse_note(r)
            note = "at chance within this budget" + (f"; {collapsed}" if collapsed else "")
        else:
            note = sync_verdict(r) or ""
        short = epochs_note(os.path.join(work_dir, row))
        if short:
            note = f"{note}; {short}" if note else short
        present, sync = (_percent(r.get(k)) for k in ("present_pair_top1", "sync_pair_top1"))
        val = _percent(val_top1(r, os.path.join(work_dir, row)))
        lines.append(f"| {row} | {val} | {top1:.1f} | {100 * r['top5']:.1f} | {present} | {sync} "
                     f"| {PAPER[digits][row]} | {r['parameters']:,} | {note} |")
    pairs = digits * (digits - 1) // 2
    lines += ["", "Val top-1: the validation split's (videos of MNIST's training digits), on "
              "which each row's checkpoint and learning rate were chosen; the other columns "
              "are that checkpoint's, on the test split, read once.",
              "", f"Chance: {chance:.1f} %. Test videos: "
              f"{max((r['num_videos'] for r in results.values()), default=0)}. A model that "
              f"recognises the {digits} digits but not which pair is synchronous (sync-blind) "
              f"can reach about {100 / pairs:.0f} % (1 of the {pairs} pairs); above that it "
              "must have seen the pair: its shared motion, or the one offset between its "
              "digits that it keeps in every frame (no frame order needed: the paper's "
              "Space-only). Sync pair: of the pairs of digits in a clip, how often the model "
              f"ranks the synchronous one first (a sync-blind model scores {100 / pairs:.0f} "
              "%). Notes: how far that is from sync-blind, in binomial standard errors. "
              "Present pair: how often the top-1 class is a pair of digits the clip has (the "
              "digit-recognition part: 100 % for a model that knows the digits); top-1 is "
              "about present pair x sync pair."]
    probe, levels = probe_line_of(work_dir, digits), {}
    if probe:
        lines += ["", probe[0]]
        levels[f"sync-blind probes (best) {probe[1]:.1f} %"] = probe[1]
    lines += order_lines(digits, results)
    per_epoch = [line for row in rows for line in epoch_lines(row, os.path.join(work_dir, row))]
    if per_epoch:
        lines += ["", "## Per-epoch validation", "", *per_epoch]
    path = os.path.join(work_dir, "table.md")
    from rstg_tf.data.atomic import atomic_write_text
    atomic_write_text(path, "\n".join(lines) + "\n")
    try:                    # a bare device image may lack matplotlib: table.md counts
        plots.bar_chart([r.replace("rstg_", "") for r in rows],
                        {"ours (top-1 %)": [100 * results[r]["top1"] if r in results else None
                                            for r in rows],
                         "paper (%)": [PAPER[digits][r] for r in rows]},
                        os.path.join(work_dir, "table.png"),
                        f"{digits}SyncMNIST accuracy, budget {budget}", y_label="%",
                        y_max=100.0, levels={f"chance {chance:.1f} %": chance,
                                             f"sync-blind {100 / pairs:.0f} %": 100 / pairs,
                                             **levels})
    except ImportError as error:
        print(f"no table.png: {error}", flush=True)
    return path


def val_top1(result, model_dir):
    """The validation top-1 of the checkpoint a row was tested with: result.json's
    ``val_top1``, else the best of log.csv's ``val_top1`` (best.keras is chosen by it)."""
    from rstg_tf.training.run_log import read_log

    value = result.get("val_top1")
    if isinstance(value, (int, float)):
        return value
    curve = read_log(model_dir).get("val_top1")
    return max(curve) if curve else None


def epoch_lines(row, model_dir):
    """A row's per-epoch validation as markdown lines (from its log.csv): val top-1, val
    sync pair (and its standard errors above sync-blind), learning rate; [] without a log."""
    from rstg_tf.training.run_log import read_log

    log = read_log(model_dir)
    if not log.get("epoch"):
        return []
    lines = [f"{row}:", "", "| epoch | val top-1 % | val sync pair % (s.e.) | learning rate |",
             "| --- | --- | --- | --- |"]
    for i, epoch in enumerate(log["epoch"]):
        def at(key):
            values = log.get(key, [])
            return values[i] if i < len(values) else None
        sync, z = at("val_sync_pair"), at("val_sync_pair_z")
        sync = "" if sync is None else f"{100 * sync:.1f}" + ("" if z is None else f" ({z:+.1f})")
        rate = at("learning_rate")
        lines.append(f"| {int(epoch) + 1} | {_percent(at('val_top1'))} | {sync} | "
                     f"{'' if rate is None else f'{rate:.2g}'} |")
    return lines + [""]


def _percent(fraction):
    return "" if fraction is None else f"{100 * fraction:.1f}"


def probe_line_of(work_dir, digits):
    """(line, best probe %) from work_dir/probe.json (``python -m
    experiments.sync_pair.probe``), if it has one; a file that is not a probe report of
    these clips is named and left out."""
    from experiments.sync_pair.report import probe_summary

    path = os.path.join(work_dir, "probe.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as fh:
            return probe_summary(json.load(fh), digits)
    except (ValueError, OSError) as e:           # json.JSONDecodeError is a ValueError
        print(f"warning: {path} left out of table.md: {e}", flush=True)
        return None


def order_lines(digits, results, min_gap=5.0):
    """table.md's section on the paper's order: each pair of our rows the paper separates
    by >= ``min_gap`` points, ours beside it in standard errors (``rstg_tf.metrics``)."""
    comparisons = metrics.paper_order(PAPER[digits], results, min_gap=min_gap)
    if not comparisons:
        return []
    counts = metrics.order_summary(comparisons)
    return ["", f"## The paper's order (pairs it separates by >= {min_gap:g} points)", "",
            f"{counts['holds']} of {len(comparisons)} hold beyond noise, "
            f"{counts['reversed']} reversed, {counts['within noise']} within noise "
            f"(top-1 difference over its standard error; |z| >= {metrics.Z_THRESHOLD:g}).", "",
            *(f"- {describe(c)}" for c in comparisons)]


def sync_verdict(result, z=metrics.Z_THRESHOLD):
    """A short note on whether ``result``'s sync-pair accuracy is beyond chance (None
    without a sync-pair figure, as ``rstg_tf.metrics.sync_pair_z``)."""
    k = metrics.sync_pair_z(result)
    if k is None:
        return None
    blind = float(result.get("sync_pair_chance", result.get("motion_blind_sync_pair")))
    if k >= z:
        return f"finds the sync pair: {k:+.1f} s.e. above its chance {100 * blind:.0f} %"
    if k <= -z:
        return f"sync-blind: sync pair {k:+.1f} s.e. below {100 * blind:.0f} %"
    return f"sync-blind: sync pair within {z:g} s.e. of {100 * blind:.0f} % ({k:+.1f})"


def collapse_note(result):
    """'predicts one class for every clip' when the result says so (``predicted_classes``
    is 1 over more than one clip), else None (also for results without the field)."""
    if result.get("predicted_classes") == 1 and int(result.get("num_videos") or 0) > 1:
        return "predicts one class for every clip (its output ignores the input)"
    return None


def describe(comparison, names=None):
    """One line on ``comparison`` (a ``rstg_tf.metrics.Comparison``), its rows named by
    ``names`` (row -> name) where given."""
    names = names or {}
    c = comparison
    hi, lo = names.get(c.higher, c.higher), names.get(c.lower, c.lower)
    return (f"{hi} > {lo} (paper +{c.paper_gap:.1f}): ours {c.ours_gap:+.1f} points, "
            f"{c.z:+.1f} s.e.: **{c.verdict}**")
