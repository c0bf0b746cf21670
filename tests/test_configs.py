"""Every experiment flagfile in configs/ parses into the TrainConfig its name promises,
alone (the reference's values) and after each budget flagfile (as python -m train.table
gives them)."""

import re
from pathlib import Path

import pytest
from absl import flags

from tests.helpers import ROOT, run_python
from train.train_flags import config_from_flags, define_flags

CONFIGS = Path(ROOT) / "configs"
ROWS = sorted(CONFIGS.glob("syncmnist[35]_*.flags"))
BUDGETS = sorted(CONFIGS.glob("budget_*.flags"))


def _parse(monkeypatch, *flagfiles):
    monkeypatch.chdir(ROOT)        # flagfiles include each other by repo-relative paths
    fv = flags.FlagValues()
    define_flags(fv, required=False)
    fv(["prog", *[f"--flagfile={p.relative_to(ROOT)}" for p in flagfiles],
        "--model_dir=/tmp/unused"])
    return config_from_flags(fv)


def _expected(path):
    digits, row = re.fullmatch(r"syncmnist([35])_(\w+)\.flags", path.name).groups()
    positional = row == "rstg_positional_all_temp"
    if row.startswith("rstg_"):
        schedule = "all_temp" if positional else row[len("rstg_"):]
        return digits, "rstg", schedule, positional
    return digits, row, None, False


def test_the_table_rows_are_all_there():
    names = {p.name for p in ROWS}
    for digits, rows in (("3", ["mean_lstm", "conv_lstm", "rstg_space_only", "rstg_time_only",
                                "rstg_homogeneous", "rstg_one_temp", "rstg_all_temp"]),
                         ("5", ["conv_lstm", "i3d", "non_local", "rstg_homogeneous",
                                "rstg_one_temp", "rstg_all_temp",
                                "rstg_positional_all_temp"])):
        missing = {f"syncmnist{digits}_{r}.flags" for r in rows} - names
        assert not missing, f"Table 1 rows without a flagfile: {sorted(missing)}"
    assert {p.stem for p in BUDGETS} >= {"budget_quick", "budget_device", "budget_paper"}


@pytest.mark.parametrize("path", ROWS, ids=lambda p: p.stem)
def test_row_flagfile_is_its_row_at_reference_values(monkeypatch, path):
    digits, model, schedule, positional = _expected(path)
    config = _parse(monkeypatch, path)
    assert config.data_dir == f"data/syncmnist{digits}"
    m = config.model
    assert (m.name, m.num_classes, m.num_frames, m.num_filters, m.dropout) == (
        model, 46, 10, 512, 0.0)
    if schedule is not None:
        assert m.rstg.schedule == schedule
        assert (m.rstg.node_dim, m.rstg.message_dim, m.rstg.num_iterations,
                m.rstg.num_scales, m.rstg.gather, m.rstg.norm) == (
                    512, 512, 3, 3, "simple", "none")
    # mnist_config.yaml turns position maps on; in Table 1 only the positional row has them.
    assert m.rstg.position_maps is positional
    assert (config.optimizer, config.learning_rate, config.momentum) == ("sgd", 1e-4, 0.9)


@pytest.mark.parametrize("budget", BUDGETS, ids=lambda p: p.stem)
def test_every_row_parses_under_every_budget(monkeypatch, budget):
    for path in ROWS:
        digits, model, schedule, positional = _expected(path)
        config = _parse(monkeypatch, path, budget)
        assert config.model.name == model, path.name
        assert config.model.rstg.position_maps is positional, path.name
        if schedule is not None:
            assert config.model.rstg.schedule == schedule, path.name
    if budget.stem == "budget_quick":    # the quick budget's documented sizes
        assert (config.model.num_filters, config.model.rstg.node_dim, config.batch_size,
                config.optimizer, config.freeze_backbone) == (32, 64, 16, "adam", True)


def test_every_budget_names_a_pretraining_recipe_the_cli_accepts():
    """train.table passes each budget's PretrainRecipe to python -m train.pretrain as
    --<field>=<value>: every field must be one of its flags, and the files differ."""
    import dataclasses

    from rstg_tf.training.pretrain import PretrainRecipe
    from train import table

    recipes = {b: PretrainRecipe(**table.BUDGETS[b]["backbone"]) for b in table.BUDGETS}
    assert {p.stem[len("budget_"):] for p in BUDGETS} == set(recipes)   # one flagfile each
    assert len({r.file_name() for r in recipes.values()}) == len(recipes)
    help_text = run_python(["-m", "train.pretrain", "--helpfull"]).stdout
    for recipe in recipes.values():
        for field in dataclasses.asdict(recipe):
            assert f"--{field}:" in help_text, field
