"""The Something-Something clip pipeline: sampling and crop geometry, train / eval / dense
clips, normalisation, per-video averaging and the dense evaluation, and input errors."""

import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from rstg_tf.data.video_clips import (ClipConfig, average_per_video, clip_dataset,
                                      crop_offsets, evaluate_dense, resized_shape,
                                      sample_indices, split_files)
from tests import smth_fixtures as fx

TINY = ClipConfig(num_frames=4, short_side=32, crop_size=28)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    layout = fx.make_layout(tmp_path_factory.mktemp("smth"))
    output = tmp_path_factory.mktemp("shards")
    fx.convert(layout, output)
    return str(output)


def _np(x):
    return np.asarray(x)


def test_sample_indices():
    train = _np(sample_indices(64, 8, "train", seed=[1, 2]))
    assert np.all(np.diff(train) == 8) and 0 <= train[0] < 8           # uniform spread
    assert np.array_equal(train, _np(sample_indices(64, 8, "train", seed=[1, 2])))
    starts = {int(_np(sample_indices(64, 8, "train", seed=[s, 0]))[0]) for s in range(40)}
    assert len(starts) > 3 and starts <= set(range(8))                  # random offset
    assert _np(sample_indices(64, 8, "eval")).tolist() == list(range(4, 64, 8))
    short = _np(sample_indices(3, 8, "train"))
    assert short.min() >= 0 and short.max() <= 2 and np.all(np.diff(short) >= 0)
    assert sorted(set(_np(sample_indices(3, 8, "eval")).tolist())) == [0, 1, 2]  # repeats
    dense = _np(sample_indices(64, 8, "dense"))
    assert dense.shape == (2, 8) and dense[:, 0].tolist() == [2, 6]
    assert _np(sample_indices(1, 4, "eval")).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="mode"):
        sample_indices(10, 4, "random")


def test_crop_geometry():
    assert [int(v) for v in resized_shape(40, 56, 32)] == [32, 44]
    assert [int(v) for v in resized_shape(56, 40, 32)] == [44, 32]
    assert [int(v) for v in resized_shape(100, 176, 256)] == [256, 450]
    assert _np(crop_offsets(32, 44, 28, "eval")).tolist() == [[2, 8]]
    dense = _np(crop_offsets(32, 44, 32, "dense", 11))
    assert dense.shape == (11, 2) and np.all(dense[:, 0] == 0)
    assert dense[0, 1] == 0 and dense[-1, 1] == 44 - 32 and np.all(np.diff(dense[:, 1]) >= 0)
    assert np.all(_np(crop_offsets(32, 32, 32, "dense", 11)) == 0)   # width 32: all coincide
    corners = np.concatenate([_np(crop_offsets(32, 44, 28, "train", seed=[s, 1]))
                              for s in range(30)])
    assert corners[:, 0].min() >= 0 and corners[:, 0].max() <= 4 and corners[:, 1].max() <= 16
    assert len(set(map(tuple, corners))) > 5
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than the 28x28 crop"):
        crop_offsets(20, 44, 28, "eval")
    with pytest.raises(ValueError, match="must not exceed the short side"):
        ClipConfig(short_side=32, crop_size=40)


def test_train_and_eval_clips(data_dir):
    train = clip_dataset(data_dir, "train", batch_size=2, config=TINY, seed=3)
    batches = list(train.as_numpy_iterator())
    assert len(batches) == 3                                  # 6 videos, drop remainder
    clips, labels = batches[0]
    assert clips.shape == (2, 4, 28, 28, 3) and clips.dtype == np.float32
    assert labels.dtype == np.int32
    assert set(np.concatenate([b[1] for b in batches])) <= {0, 1, 2, 3}
    again = list(clip_dataset(data_dir, "train", batch_size=2, config=TINY,
                              seed=3).as_numpy_iterator())
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again))

    evaluated = clip_dataset(data_dir, "train", batch_size=4, mode="eval", config=TINY,
                             with_ids=True)
    first = list(evaluated.as_numpy_iterator())
    clips, labels, ids = first[0]
    assert clips.shape == (4, 4, 28, 28, 3) and ids[0] == b"v1"   # shards interleaved
    assert np.abs(clips[0]).max() < 0.05                # grey 115 -> (115 - 114.75) / 57.375
    assert labels.tolist() == [fx.GOOD[v.decode()][1] for v in ids]
    second = list(evaluated.as_numpy_iterator())
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, second))


def test_dense_evaluation(data_dir):
    config = ClipConfig(num_frames=4, short_side=32, crop_size=28, dense_crops=11)
    dense = clip_dataset(data_dir, "train", batch_size=10, mode="dense", config=config)
    clips, labels, ids = (np.concatenate(x) for x in zip(*dense.as_numpy_iterator()))
    assert clips.shape == (6 * 22, 4, 32, 32, 3) and config.clips_per_video == 22
    assert [ids.tolist().count(v.encode()) for v in fx.GOOD] == [22] * 6
    # the 11 crops of a 32x44 frame run from x = 0 to the right edge
    v2 = clips[ids == b"v2"]
    assert not np.array_equal(v2[0], v2[10]) and not np.array_equal(v2[0], v2[11])

    def fixed(batch):                               # a fixed "model": 4 logits per clip
        means = tf.reduce_mean(batch, axis=[1, 2, 3])
        return tf.concat([means, tf.reduce_max(batch, axis=[1, 2, 3, 4])[:, None]], 1)

    result = evaluate_dense(fixed, dense)
    assert result["num_videos"] == 6 and result["num_clips"] == 132
    per_clip = fixed(tf.constant(clips)).numpy()
    for video_id, mean in zip(result["video_ids"], result["logits"]):
        np.testing.assert_allclose(mean, per_clip[ids == video_id].mean(0), rtol=1e-5)
    assert result["labels"].tolist() == [fx.GOOD[v.decode()][1] for v in result["video_ids"]]
    assert 0 <= result["top1"] <= result["top5"] == 1.0       # 4 classes: top-5 is certain

    model = keras.Sequential([keras.Input((4, 32, 32, 3)),
                              keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(4)])
    assert evaluate_dense(model, dense)["num_videos"] == 6


def test_average_per_video():
    ids, means = average_per_video([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [0.0, 1.0]],
                                   ["b", "a", "b", "a"])
    assert ids.tolist() == ["b", "a"] and means.tolist() == [[3.0, 2.5], [1.5, 1.5]]
    with pytest.raises(ValueError, match="logits"):
        average_per_video(np.zeros((3, 2)), ["a"])


def test_input_errors(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        split_files(str(tmp_path / "nowhere"), "train")
    with pytest.raises(FileNotFoundError, match="convert_smth"):
        split_files(str(tmp_path), "train")
    with pytest.raises(ValueError, match="no 'validation' split"):
        split_files(data_dir, "validation")
    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    shard = sorted(broken.glob("train-00001-*"))[0]
    shard.write_bytes(shard.read_bytes()[:-40])                 # truncated
    data = clip_dataset(str(broken), "train", batch_size=2, mode="eval", config=TINY)
    with pytest.raises(tf.errors.InvalidArgumentError, match=shard.name):
        list(data)
