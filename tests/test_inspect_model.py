"""A model's start at a glance: ``rstg_tf.training.inspect_model``, ``python -m train.inspect``."""

import json
import math

import keras
import numpy as np
import pytest

from rstg_tf.config import SCHEDULES
from rstg_tf.models import ModelConfig, build_model
from rstg_tf.training.inspect_model import (DEFAULT_EPS, inspect_model, markdown_table,
                                            node_sensitivity, rstg_block)
from tests.helpers import run_python, tiny_config, without_tensorflow
from tests.syncmnist_fixtures import write_fake_npz

FRAMES = 4


def _model(seed=0, name="rstg", **rstg):
    keras.utils.set_random_seed(seed)
    return build_model(ModelConfig(name=name, num_frames=FRAMES, num_filters=4, hidden=8,
                                   rstg=tiny_config(**rstg)))


def _clips(batch=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, FRAMES, 64, 64, 1), np.uint8)


def _stage_names(schedule, k=2):
    time = schedule not in ("one_temp", "space_only")
    space = schedule != "time_only"
    inner = [f"{kind}{i}" for i in range(k)
             for kind, on in (("time", time), ("space", space)) if on]
    return ["features", "nodes", *inner, "final", "readout"]


@pytest.mark.parametrize("clip_mode", ["layerwise", "framewise"])
def test_every_schedule_gives_finite_positive_numbers_that_match_the_block(clip_mode):
    clips = _clips()
    rows = {}
    for schedule in SCHEDULES:
        if clip_mode == "framewise" and schedule not in ("all_temp", "space_only"):
            continue
        r = inspect_model(_model(schedule=schedule, clip_mode=clip_mode), clips)
        assert list(r["stage_rms"]) == _stage_names(schedule), schedule
        numbers = [*r["stage_rms"].values(), r["readout_spread"], r["logits_spread"],
                   r["sensitivity"]]
        assert all(math.isfinite(v) and v > 0 for v in numbers), (schedule, r)
        # the stages, run one by one, are the block: the same ops in its own (layerwise)
        # order (bitwise equal on a CPU), to float32 rounding in the framewise one
        assert r["consistency"] <= (1e-6 if clip_mode == "layerwise" else 1e-5), r
        # Time-only's nodes never talk: a change of node 0 stays in node 0
        assert (r["cross_node_share"] == 0.0) == (schedule == "time_only"), (schedule, r)
        assert r["num_clips"] == 3 and r["schedule"] == schedule and r["eps"] == DEFAULT_EPS
        rows[schedule] = r
    table = markdown_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert table[0].startswith("| row | rms features | rms nodes | rms time0 | rms space0")
    assert "rms final | rms readout | readout spread" in table[0]


def test_known_answers_a_blind_final_stage_and_a_small_step():
    model, clips = _model(schedule="all_temp"), _clips(4)
    block = rstg_block(model)
    features = keras.Model(model.input, block.input)(clips)
    nodes = block.encode(features, training=False)
    # the derivative: a 10x smaller step gives the same ratio
    fine = node_sensitivity(block, nodes, node=3, eps=DEFAULT_EPS / 10)["sensitivity"]
    coarse = node_sensitivity(block, nodes, node=3)["sensitivity"]
    assert coarse == pytest.approx(fine, rel=0.02)
    # a final LSTM that reads nothing: every clip gets the same read-out, zero (its
    # gates' g part starts at tanh(0 + 0 bias) = 0, so its cells stay empty)
    kernel = block.time_final.kernel
    kernel.assign(np.zeros(kernel.shape, "float32"))
    r = inspect_model(model, clips, node=5)
    assert r["sensitivity"] == 0.0 and r["readout_spread"] == 0.0
    assert r["logits_spread"] == 0.0 and r["cross_node_share"] == 0.0
    assert r["stage_rms"]["space1"] > 0 and r["stage_rms"]["readout"] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_all_temp_starts_input_blind_without_norm_and_layer_norm_wakes_it(seed):
    # At the SyncMNIST models' start each un-normalised space stage shrinks the nodes'
    # input-dependent part: All-temp's read-out moves 5-75x less than Time-only's for the
    # same change, and layer norm at the reference's places lifts it 300x or more (seeds
    # 0-9 at these sizes; ~2000x at the device budget's, seed 0).
    clips = _clips(4, seed)

    def sensitivity(**rstg):
        return inspect_model(_model(seed, node_dim=16, message_dim=16, num_iterations=3,
                                    **rstg), clips)["sensitivity"]

    blind = sensitivity(schedule="all_temp")
    assert blind < sensitivity(schedule="time_only") / 3
    assert sensitivity(schedule="all_temp", norm="layer") > 30 * blind


def test_bad_models_and_arguments_name_the_problem():
    with pytest.raises(ValueError, match="'mean_lstm' is not an RSTG clip classifier"):
        inspect_model(_model(name="mean_lstm"), _clips())
    model = _model()
    with pytest.raises(ValueError, match=r"node must be in 0\.\.13; got 14"):
        inspect_model(model, _clips(), node=14)
    with pytest.raises(ValueError, match="eps must be > 0"):
        inspect_model(model, _clips(), eps=0.0)
    with pytest.raises(ValueError, match=r"batch >= 2"):
        inspect_model(model, _clips(1))


def _error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_inspect_program_compares_schedules_and_reads_a_trained_run(tmp_path):
    npz = write_fake_npz(tmp_path / "mnist.npz")
    out = tmp_path / "report" / "inspect.json"
    result = run_python(["-m", "train.inspect",
                         "--flagfile=configs/syncmnist3_rstg_all_temp.flags", "--num_filters=8",
                         "--node_dim=16", "--message_dim=16", "--hidden=16", "--num_clips=4",
                         "--schedules=all_temp,time_only", f"--mnist={npz}", f"--output={out}",
                         "--grad_batches=1", "--batch_size=2"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert list(report["rows"]) == ["all_temp", "time_only"]
    assert report["num_clips"] == 4 and report["num_frames"] == 10 and report["digits"] == 3
    for schedule, row in report["rows"].items():
        assert row["schedule"] == schedule and row["sensitivity"] > 0
        assert list(row["stage_rms"]) == _stage_names(schedule, k=3)
    assert "| all_temp | " in result.stdout and "| time_only | " in result.stdout
    assert list(report["gradients"]) == ["all_temp", "time_only"]
    assert report["grad_batch_size"] == 2 and report["gradients"]["all_temp"]["batches"] == 1
    # a trained run's checkpoint (here: a model saved at its start); its gradient norms
    # on the run's own batch size and clip (config.json) unless the flags give them
    run = tmp_path / "run"
    run.mkdir()
    _model(schedule="one_temp").save(run / "last.keras")
    (run / "config.json").write_text(json.dumps({"batch_size": 3, "clip_grad_norm": 0.5}))
    args = ["-m", "train.inspect", f"--model_dir={run}", "--checkpoint=last", "--num_clips=2",
            "--grad_batches=1", f"--mnist={npz}", f"--output={out}"]
    result = run_python(args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "| run (last) | " in result.stdout and f"clips of {FRAMES} frames" in result.stdout
    assert "on 1 batch(es) of 3 training clips" in result.stdout
    assert json.loads(out.read_text())["gradients"]["run (last)"]["clip_grad_norm"] == 0.5
    result = run_python([*args, "--batch_size=2", "--clip_grad_norm=2"])
    assert "on 1 batch(es) of 2 training clips" in result.stdout, result.stderr[-2000:]
    assert json.loads(out.read_text())["gradients"]["run (last)"]["clip_grad_norm"] == 2.0


def test_inspect_program_under_jax_without_tensorflow(tmp_path):
    npz = write_fake_npz(tmp_path / "mnist.npz")
    result = run_python([*without_tensorflow("train.inspect"), "--num_filters=4", "--node_dim=8",
                         "--message_dim=8", "--num_frames=4", "--num_iterations=1",
                         "--num_clips=2", "--schedules=all_temp", f"--mnist={npz}",
                         "--grad_batches=0"],
                        KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "| all_temp | " in result.stdout and "clips of 4 frames" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--schedules=all_temp,bogus"], "error: unknown schedules ['bogus'] in --schedules"),
    (["--model_dir=x", "--schedules=time_only"], "give one of the two"),
    (["--output=x.txt"], "--output must name a .json file"),
    (["--grad_batches=-1"], "--grad_batches"),
    (["--clip_grad_norm=0"], "clip_grad_norm must be"),
])
def test_inspect_program_bad_input_is_one_error_line(args, message):
    result = run_python(["-m", "train.inspect", *args])
    assert result.returncode == 2 and len(_error_lines(result)) == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
