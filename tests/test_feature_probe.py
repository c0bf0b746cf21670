"""Sync-blind probes of a frozen backbone (``python -m experiments.sync_pair.probe``), at
tiny sizes."""

import json
import math
import os

import numpy as np
import pytest

from rstg_tf.data import syncmnist_records
from rstg_tf.data.syncmnist import SyncMnistConfig
from rstg_tf.models import ModelConfig, build_backbone
from experiments.sync_pair.feature_probe import (PROBES, backbone_maps, sync_blind_optimum,
                                            probe_inputs, run_probe)
from rstg_tf.training.pretrain import backbone_model
from tests.helpers import run_python
from tests.syncmnist_fixtures import write_fake_npz

CONFIG = ModelConfig(num_filters=4)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A tiny 3SyncMNIST shard set and random weights for a 4-filter backbone."""
    root = tmp_path_factory.mktemp("probe")
    mnist = write_fake_npz(root / "mnist.npz")
    data_dir = str(root / "sync3")
    for split, count in (("train", 12), ("val", 8), ("test", 8)):
        syncmnist_records.make_split(data_dir, split, SyncMnistConfig(num_digits=3),
                                     num_videos=count, num_shards=1, mnist_source=mnist,
                                     expected_counts=None, verbose=False)
    weights = str(root / "backbone4.weights.h5")
    backbone_model(build_backbone(CONFIG), CONFIG).save_weights(weights)
    return data_dir, weights


def test_probe_inputs_are_the_backbone_maps_as_each_probe_reads_them(tiny_set):
    data_dir, weights = tiny_set
    batches = list(syncmnist_records.dataset(data_dir, "train", 5))
    maps, labels = backbone_maps(batches, CONFIG, weights, 12, verbose=0)
    assert maps.shape == (12, 10, 6, 6, 4) and maps.dtype == np.float16
    np.testing.assert_array_equal(labels, np.concatenate([y for _, y in batches]))
    extractor = backbone_model(build_backbone(CONFIG), CONFIG, frames=10)
    extractor.load_weights(weights)
    exact = np.concatenate([extractor.predict_on_batch(x) for x, _ in batches])
    assert np.abs(exact).max() > 0
    np.testing.assert_allclose(maps, exact, rtol=1e-3, atol=1e-3)     # float16 storage
    # nodes (and mean): the time-mean map area-pooled into the graph's nodes. Node 0: the
    # 3x3 scale's top-left cell (2x2 of the 6x6 map); node 9: the 2x2 scale's top-left
    # (3x3 of the map); node 13: the 1x1 scale (the whole map).
    nodes = probe_inputs("nodes", maps, CONFIG)
    mean = maps.astype(np.float32).mean(axis=1)
    assert nodes.shape == (12, 14, 4) and nodes.dtype == np.float32
    np.testing.assert_array_equal(probe_inputs("mean", maps, CONFIG), nodes)
    for node, cells in ((0, mean[:, :2, :2]), (9, mean[:, :3, :3]), (13, mean)):
        np.testing.assert_allclose(nodes[:, node], cells.mean(axis=(1, 2)), rtol=1e-5,
                                   atol=1e-5)
    # cells: every frame's cells, frame by frame, row-major.
    cells = probe_inputs("cells", maps, CONFIG)
    assert cells.shape == (12, 360, 4)
    np.testing.assert_array_equal(cells[:, 36 * 3 + 6 * 2 + 5], maps[:, 3, 2, 5])
    with pytest.raises(ValueError, match="no clips"):
        backbone_maps([], CONFIG, weights, 0, verbose=0)
    with pytest.raises(ValueError, match="unknown probe 'lstm'"):
        probe_inputs("lstm", maps, CONFIG)


def test_features_beyond_float16_are_refused(tmp_path, tiny_set):
    data_dir, weights = tiny_set
    model = backbone_model(build_backbone(CONFIG), CONFIG)
    model.load_weights(weights)
    model.set_weights([w * 100.0 for w in model.get_weights()])     # ~1e6 x the features
    huge = str(tmp_path / "huge.weights.h5")
    model.save_weights(huge)
    with pytest.raises(ValueError, match="float16"):
        backbone_maps(syncmnist_records.dataset(data_dir, "test", 4), CONFIG, huge, 8,
                      verbose=0)


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_probe_learns_classes_its_features_carry(kind):
    rng = np.random.default_rng(0)

    def split(count):
        labels = rng.integers(0, 4, count)
        features = rng.normal(size=(count, 14, 8)).astype(np.float16)  # as stored
        features[np.arange(count), :, labels] += 3.0      # the class is in every node
        return features, labels

    history = run_probe(kind, split(256), split(64), num_classes=46, epochs=4,
                        steps_per_epoch=16, batch_size=16, learning_rate=3e-3)
    assert set(history) >= {"loss", "top1", "top5", "val_loss", "val_top1", "val_top5"}
    assert all(len(v) == 4 for v in history.values())
    assert history["val_loss"][-1] < history["val_loss"][0] < math.log(46)
    assert history["val_top1"][-1] > 0.9


def test_sync_blind_optimum_and_unknown_probe():
    assert sync_blind_optimum(3) == pytest.approx({"top1": 1 / 3, "loss": math.log(3)})
    assert sync_blind_optimum(5) == pytest.approx({"top1": 0.1, "loss": math.log(10)})
    x, y = np.zeros((16, 14, 2), np.float32), np.zeros(16, np.int64)
    with pytest.raises(ValueError, match="unknown probe 'lstm'"):
        run_probe("lstm", (x, y), (x, y), 46, 1, 1)


def test_probe_program_writes_json_and_plot(tmp_path, tiny_set):
    data_dir, weights = tiny_set
    rows = tmp_path / "table"
    (rows / "rstg_all_temp").mkdir(parents=True)
    (rows / "rstg_all_temp" / "log.csv").write_text(
        "epoch,loss,val_loss,val_top1\n0,3.8,3.7,0.05\n1,3.5,3.4,0.125\n")
    output = str(tmp_path / "out" / "probe.json")
    result = run_python(["-m", "experiments.sync_pair.probe", f"--data_dir={data_dir}",
                         "--num_filters=4",
                         f"--backbone_weights={weights}", f"--rows_dir={rows}",
                         f"--output={output}", "--epochs=2", "--steps_per_epoch=3",
                         "--batch_size=4", "--max_videos=10", "--verbose=0"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.load(open(output))
    assert report["num_digits"] == 3 and report["train_videos"] == 10
    assert report["val_videos"] == 8
    assert report["sync_blind_optimum"] == pytest.approx({"top1": 1 / 3,
                                                            "loss": math.log(3)})
    assert sorted(report["probes"]) == ["cells", "mean", "nodes"]
    for history in report["probes"].values():
        assert len(history["val_top1"]) == 2 and np.isfinite(history["val_loss"]).all()
    assert report["rows_val_top1"] == {"rstg_all_temp": [5.0, 12.5]}
    assert os.path.getsize(report["files"]["png"]) > 0
    assert "probe nodes: val top-1" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--backbone_weights=/nonexistent.weights.h5"], "does not exist"),
    (["--output=probe.txt"], "must name a .json file"),
    (["--probes=lstm"], "probes"),
    (["--rows_dir=/nonexistent"], "does not exist"),
])
def test_probe_program_bad_input_is_one_line_exit_2(tmp_path, tiny_set, args, message):
    data_dir, weights = tiny_set
    base = {"--data_dir": data_dir, "--backbone_weights": weights,
            "--output": str(tmp_path / "p.json"), "--num_filters": "4"}
    base.update(a.split("=", 1) for a in args)
    result = run_python(["-m", "experiments.sync_pair.probe",
                         *(f"{k}={v}" for k, v in base.items())])
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and message in errors[0] and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "p.json")
