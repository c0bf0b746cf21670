"""RSTG schedules on oracle digit maps (``python -m experiments.sync_pair.oracle``), at tiny
sizes."""

import ast
import json
import pathlib

import numpy as np
import pytest

from rstg_tf.config import SCHEDULES
from rstg_tf.data.syncmnist import SyncMnistConfig, SyncMnistGenerator
from experiments.sync_pair import oracle_digits
from experiments.sync_pair.oracle_digits import (digit_maps, digit_trajectories, oracle_arrays,
                                            run_oracle)
from tests.helpers import run_python, without_tensorflow
from tests.syncmnist_fixtures import fake_mnist, write_fake_npz


def test_digit_maps_place_each_digit_in_its_cells_and_channel():
    coords = np.array([[[0, 0], [72, 36]], [[50, 50], [10, 60]]])       # [T=2, D=2, 2]
    maps = digit_maps(coords, np.array([7, 2]))
    assert maps.shape == (2, 6, 6, 10) and maps.dtype == np.float32
    # each digit's shares sum to 1 in its own channel; the other channels stay empty
    np.testing.assert_allclose(maps[..., [7, 2]].sum(axis=(1, 2)), 1.0, rtol=1e-6)
    assert not np.delete(maps, [7, 2], axis=-1).any()
    # a 28-pixel box at the top-left corner: cells of 100/6 = 16.7 pixels, so 16.7/28 of
    # it in the first row and column of cells, the rest in the second
    first = (100 / 6) / 28
    np.testing.assert_allclose(maps[0, :2, :2, 7], np.outer([first, 1 - first],
                                                            [first, 1 - first]), rtol=1e-5)
    # row 72 + 28 = 100: the bottom two rows of cells; col 36-64: the third and fourth
    assert set(np.flatnonzero(maps[0, :, :, 2].sum(axis=1))) == {4, 5}
    assert set(np.flatnonzero(maps[0, :, :, 2].sum(axis=0))) == {2, 3}
    with pytest.raises(ValueError, match="distinct classes"):
        digit_maps(coords, np.array([3, 3]))
    with pytest.raises(ValueError, match=r"coords must be \[T, D, 2\]"):
        digit_maps(coords[..., :1], np.array([7, 2]))


def test_oracle_arrays_and_a_schedule_learning_from_them():
    images, labels = fake_mnist(12)
    gen = SyncMnistGenerator(images, labels, "train", SyncMnistConfig(num_frames=4))
    maps, labels, digits = oracle_arrays(gen, 48)
    assert maps.shape == (48, 4, 6, 6, 10) and labels.shape == (48,) and digits.shape == (48, 3)
    video = gen.video(5)
    np.testing.assert_array_equal(maps[5], digit_maps(video.coords, video.digits))
    assert labels[5] == video.label and (digits[5] == video.digits).all()
    with pytest.raises(ValueError, match="count must be in"):
        oracle_arrays(gen, 0)
    data = (maps, labels, digits)
    result = run_oracle("time_only", data, data, data, epochs=3, steps_per_epoch=6,
                        batch_size=8, learning_rate=3e-3, node_dim=8, message_dim=8,
                        lr_schedule="cosine", cosine_fraction=0.5, min_lr=3e-4, norm="layer")
    assert len(result["val_top1"]) == 3 and result["loss"][-1] < result["loss"][0]
    assert len(result["val_sync_pair"]) == len(result["val_sync_pair_z"]) == 3
    assert result["learning_rate"][0] == pytest.approx(3e-3)
    assert result["learning_rate"][-1] == pytest.approx(3e-4)      # the cosine's floor
    left = result["steps_to_leave_sync_blind"]
    assert left is None or left in (6, 12, 18)
    assert 0.0 <= result["present_pair_top1"] <= 1.0 and result["parameters"] > 0


def test_digit_trajectories_give_positions_or_steps_per_class_channel():
    coords = np.array([[[0, 0], [71, 36]], [[10, 5], [61, 31]], [[13, 5], [64, 31]]])
    positions = digit_trajectories(coords, np.array([7, 2]))
    assert positions.shape == (3, 10, 3) and positions.dtype == np.float32
    np.testing.assert_array_equal(positions[:, [7, 2], 0], 1.0)
    assert not np.delete(positions, [7, 2], axis=1).any()
    np.testing.assert_allclose(positions[:, 2, 1:], coords[:, 1] / 71, rtol=1e-6)
    steps = digit_trajectories(coords, np.array([7, 2]), "steps")
    np.testing.assert_array_equal(steps[0], positions[0])          # frame 0: where they start
    assert not steps[1:, :, 0].any()                               # the classes stay
    # frames 1..: the moves, in canvas pixels / 71; digits 7 and 2 move alike in frame 2
    np.testing.assert_allclose(steps[1:, 7, 1:] * 71, [[10, 5], [3, 0]], atol=1e-5)
    np.testing.assert_allclose(steps[1:, 2, 1:] * 71, [[-10, -5], [3, 0]], atol=1e-5)
    with pytest.raises(ValueError, match="kind must be one of"):
        digit_trajectories(coords, np.array([7, 2]), "velocity")
    with pytest.raises(ValueError, match="distinct classes"):
        digit_trajectories(coords, np.array([2, 2]))


def test_mlp_head_learns_from_steps_and_rstg_refuses_trajectories():
    images, labels = fake_mnist(12)
    gen = SyncMnistGenerator(images, labels, "train", SyncMnistConfig(num_frames=4))
    steps, labels, digits = oracle_arrays(gen, 48, inputs="steps")
    assert steps.shape == (48, 4, 10, 3)
    video = gen.video(7)
    np.testing.assert_array_equal(steps[7], digit_trajectories(video.coords, video.digits,
                                                               "steps"))
    with pytest.raises(ValueError, match="inputs must be one of"):
        oracle_arrays(gen, 4, inputs="pixels")
    data = (steps, labels, digits)
    result = run_oracle("mlp", data, data, data, epochs=3, steps_per_epoch=6, batch_size=8,
                        learning_rate=3e-3, mlp_width=16)
    assert result["loss"][-1] < result["loss"][0]
    assert result["parameters"] == (120 * 16 + 16) + (16 * 16 + 16) + (16 * 46 + 46)
    with pytest.raises(ValueError, match="RSTG schedules read maps"):
        run_oracle("time_only", data, data, data, epochs=1, steps_per_epoch=1, batch_size=8)


@pytest.mark.heavy
def test_oracle_program_end_to_end_and_bad_output(tmp_path):
    npz = write_fake_npz(tmp_path / "mnist.npz")
    out = tmp_path / "oracle" / "oracle.json"
    result = run_python(["-m", "experiments.sync_pair.oracle", f"--mnist={npz}",
                         "--schedules=space_only",
                         "--schedules=time_only", "--train_videos=32", "--val_videos=12",
                         "--test_videos=16", "--norm=layer", "--lr_schedule=cosine",
                         "--epochs=2", "--steps_per_epoch=2", "--batch_size=8",
                         "--node_dim=8", "--message_dim=8", f"--output={out}", "--verbose=0"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert list(report["schedules"]) == ["space_only", "time_only"]
    assert report["train_videos"] == 32 and report["test_videos"] == 16
    assert report["val_videos"] == 12 and report["norm"] == "layer"
    for r in report["schedules"].values():
        assert len(r["val_top1"]) == 2 and "sync_pair_top1" in r and "present_pair_top1" in r
        assert len(r["val_sync_pair"]) == 2 and "steps_to_leave_sync_blind" in r
    assert (tmp_path / "oracle" / "oracle.png").stat().st_size > 0
    assert "time_only: test top-1" in result.stdout
    # train.curves reads each head of the report as a run on a step axis.
    drawn = run_python(["-m", "train.curves", f"--run={out}#time_only",
                        f"--run=Space-only={out}#space_only", "--metric=val_sync_pair_z",
                        f"--output={tmp_path}/curves.png"], timeout=60)
    assert drawn.returncode == 0, drawn.stderr
    rows = drawn.stdout.splitlines()
    assert rows[2].startswith("| time_only | 8 | 2 | 4 (2 of 2) |")
    assert rows[3].startswith("| Space-only | 8 | 2 | 4 (2 of 2) |")
    assert (tmp_path / "curves.png").stat().st_size > 0
    bad = run_python(["-m", "experiments.sync_pair.oracle", f"--mnist={npz}",
                      f"--output={tmp_path}/o.txt"])
    assert bad.returncode == 2 and "--output must name a .json file" in bad.stderr
    bad = run_python(["-m", "experiments.sync_pair.oracle", f"--mnist={npz}", "--inputs=steps",
                      f"--output={tmp_path}/o.json"])
    assert bad.returncode == 2 and "use --schedules=mlp" in bad.stderr
    assert "Traceback" not in bad.stderr


ORACLE_CLI = (pathlib.Path(__file__).resolve().parents[1] / "experiments" / "sync_pair"
              / "oracle.py")


def _cli_list(name):
    """A list the CLI spells out (so that parsing flags does not load Keras)."""
    tree = ast.parse(ORACLE_CLI.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"experiments/sync_pair/oracle.py defines no {name}")


def test_oracle_cli_lists_match_the_library():
    assert _cli_list("INPUTS") == list(oracle_digits.INPUTS)
    assert sorted(_cli_list("SCHEDULES")) == sorted(SCHEDULES)


def test_oracle_program_mlp_on_steps_under_jax_without_tensorflow(tmp_path):
    npz = write_fake_npz(tmp_path / "mnist.npz")
    out = tmp_path / "steps.json"
    result = run_python([*without_tensorflow("experiments.sync_pair.oracle"), f"--mnist={npz}",
                         "--inputs=steps",
                         "--schedules=mlp", "--mlp_width=8", "--train_videos=32",
                         "--val_videos=12", "--test_videos=16", "--epochs=2", "--steps_per_epoch=2",
                         "--batch_size=8", f"--output={out}", "--verbose=0"],
                        KERAS_BACKEND="jax")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["inputs"] == "steps" and report["mlp_width"] == 8
    assert list(report["schedules"]) == ["mlp"]
    assert report["schedules"]["mlp"]["parameters"] == (300 * 8 + 8) + (8 * 8 + 8) + (8 * 46 + 46)
    assert "train: oracle steps of 32 videos" in result.stdout
