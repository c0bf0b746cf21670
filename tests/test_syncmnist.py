"""SyncMNIST generator (pure NumPy): labels, motion, drawing, resize, determinism."""

import math

import numpy as np
import pytest

from rstg_tf.data import pil_resize
from rstg_tf.data.syncmnist import (NO_SYNC_LABEL, NUM_CLASSES, PAIR_LABELS, SyncMnistConfig,
                                    SyncMnistGenerator, label_name, pair_label)
from rstg_tf.metrics import (present_pair_accuracy, sync_pair_accuracy, sync_pair_fields,
                             top_k_accuracy)
from tests.syncmnist_fixtures import fake_mnist


def _generator(num_digits=3, split="train", seed=0, **changes):
    images, labels = fake_mnist(12)
    return SyncMnistGenerator(images, labels, split,
                              SyncMnistConfig(num_digits=num_digits, **changes), seed)


def test_label_enumeration():
    assert sorted(set(PAIR_LABELS.values())) == list(range(45))
    assert NUM_CLASSES == 46 and NO_SYNC_LABEL == 45
    # reference order: i = 0..9, j < i -> consecutive labels
    assert pair_label(1, 0) == 0 and pair_label(2, 0) == 1 and pair_label(2, 1) == 2
    assert pair_label(9, 8) == 44
    for (i, j), label in PAIR_LABELS.items():
        assert pair_label(j, i) == label
        assert label_name(label) == f"{min(i, j)}-{max(i, j)}"
    assert label_name(45) == "no sync"
    with pytest.raises(ValueError, match="distinct"):
        pair_label(3, 3)
    with pytest.raises(ValueError, match="0-45"):
        label_name(46)


@pytest.mark.parametrize("num_digits", [3, 5])
def test_motion_rules(num_digits):
    gen = _generator(num_digits, no_sync_prob=0.0)
    for index in range(150):
        video = gen.video(index)
        coords = video.coords                                  # [T, D, 2]
        assert video.frames.shape == (10, 64, 64) and video.frames.dtype == np.uint8
        assert len(set(video.digits.tolist())) == num_digits   # distinct classes
        assert video.digits[0] == gen.labels[index % len(gen.images)]
        assert np.array_equal(gen.labels[video.mnist_indices], video.digits)
        assert coords.min() >= 0 and coords.max() <= 71
        assert video.label == pair_label(*video.digits[:2])
        deltas = np.diff(coords, axis=0)                       # steps from frame 1 on
        assert deltas.min() >= -10 and deltas.max() <= 9       # randint(lo, hi) excludes hi
        # the synchronous pair moves by the same step on every frame
        assert np.array_equal(deltas[:, 0], deltas[:, 1])
        assert np.array_equal(coords[:, 0] - coords[:, 1],
                              np.broadcast_to(coords[0, 0] - coords[0, 1], (10, 2)))


@pytest.mark.parametrize("num_digits", [3, 5])
def test_only_the_synchronous_pair_keeps_one_offset(num_digits):
    # The pair can be found without frame order: with the frames shuffled, it is the one
    # pair whose offset is the same in every frame (how the paper's Space-only, which
    # averages its nodes over time, gets above the sync-blind 1/3).
    gen = _generator(num_digits, no_sync_prob=0.0)
    rng = np.random.default_rng(0)
    first, second = np.triu_indices(num_digits, 1)
    for index in range(300):
        coords = rng.permutation(gen.video(index).coords)        # [T, D, 2], order lost
        offsets = coords[:, first] - coords[:, second]           # [T, pairs, 2]
        steady = (offsets == offsets[:1]).all(axis=(0, 2))
        assert steady.tolist() == [True] + [False] * (len(first) - 1), index
    # with no synchronous pair, no pair keeps its offset
    gen = _generator(num_digits, no_sync_prob=1.0)
    for index in range(100):
        offsets = gen.video(index).coords[:, first] - gen.video(index).coords[:, second]
        assert not (offsets == offsets[:1]).all(axis=(0, 2)).any(), index


def test_no_sync_class_moves_independently():
    gen = _generator(3, no_sync_prob=1.0)
    differing = 0
    for index in range(40):
        video = gen.video(index)
        assert video.label == NO_SYNC_LABEL
        deltas = np.diff(video.coords, axis=0)
        differing += not np.array_equal(deltas[:, 0], deltas[:, 1])
    assert differing >= 38


def test_label_histogram_near_uniform():
    gen = _generator(3, train_multiplier=50, num_frames=1)   # no_sync_prob 1/92
    labels = np.array([gen.video(i).label for i in range(5000)])
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    mean_pair = 5000 * (91 / 92) / 45                        # ~110, binomial std ~10
    assert counts[:45].min() > mean_pair - 45 and counts[:45].max() < mean_pair + 45
    assert 25 <= counts[45] <= 90                             # 5000 / 92 = 54 +- 7


def test_drawing_order_and_threshold():
    # With a 100x100 output the resize is the identity and bytescale too (max is 255), so
    # frames are the raw canvas: check it against an independent per-pixel rendering.
    gen = _generator(5, frame_size=100)
    for index in (0, 7, 33):
        video = gen.video(index)
        for t in range(10):
            canvas = np.zeros((100, 100), np.uint8)
            for (r, c), image in zip(video.coords[t], gen.images[video.mnist_indices]):
                region = canvas[r:r + 28, c:c + 28]
                region[image >= 10] = image[image >= 10]         # later digits on top
            assert np.array_equal(video.frames[t], canvas), (index, t)


def test_noise_parts_and_back_mode():
    gen = _generator(3, noise_parts=4)
    videos = [gen.video(i) for i in range(30)]
    plain = _generator(3)
    # noise adds lit pixels; the digits' own motion and labels are drawn the same way
    assert all(v.frames.shape == (10, 64, 64) for v in videos)
    assert np.mean([v.frames.mean() for v in videos]) > np.mean(
        [plain.video(i).frames.mean() for i in range(30)])


def test_video_depends_only_on_seed_split_index():
    gen = _generator(3)
    forward = [gen.video(i) for i in range(6)]
    backward = [gen.video(i) for i in reversed(range(6))][::-1]
    for a, b in zip(forward, backward):
        assert np.array_equal(a.frames, b.frames) and a.label == b.label
    other_seed = _generator(3, seed=1).video(0)
    test_split = _generator(3, split="test").video(0)
    assert not np.array_equal(forward[0].coords, other_seed.coords)
    assert not np.array_equal(forward[0].coords, test_split.coords)
    # train: every MNIST image leads `multiplier` videos; video i starts with image i mod N
    assert gen.num_videos == 10 * len(gen.images)
    assert _generator(3, split="test").num_videos == len(gen.images)
    assert gen.video(len(gen.images) + 3).mnist_indices[0] == 3


def test_generator_rejects_bad_input():
    images, labels = fake_mnist(2)
    with pytest.raises(ValueError, match="uint8"):
        SyncMnistGenerator(images.astype(np.float32), labels, "train")
    with pytest.raises(ValueError, match="split"):
        SyncMnistGenerator(images, labels, "valid")
    with pytest.raises(ValueError, match="cover classes"):
        SyncMnistGenerator(images[labels < 9], labels[labels < 9], "train")
    with pytest.raises(ValueError, match="num_digits"):
        SyncMnistConfig(num_digits=11)
    with pytest.raises(IndexError, match="out of range"):
        SyncMnistGenerator(images, labels, "test").video(20)


def _pillow_bilinear_reference(image, out_h, out_w):
    """Pillow's 8-bit bilinear resize written out pixel by pixel (horizontal pass first)."""

    def coefficients(in_size, out_size):
        scale = in_size / out_size
        filterscale = max(scale, 1.0)
        rows = []
        for out in range(out_size):
            center = (out + 0.5) * scale
            lo = max(int(center - filterscale + 0.5), 0)
            hi = min(int(center + filterscale + 0.5), in_size)
            taps = [max(0.0, 1.0 - abs((x - center + 0.5) / filterscale))
                    for x in range(lo, hi)]
            total = sum(taps)
            rows.append((lo, [int(0.5 + t / total * (1 << 22)) for t in taps]))
        return rows

    def one_pass(lines, coeffs):
        out = []
        for line in lines:
            row = []
            for lo, ks in coeffs:
                acc = (1 << 21) + sum(int(line[lo + i]) * k for i, k in enumerate(ks))
                row.append(min(max(acc >> 22, 0), 255))
            out.append(row)
        return out

    h, w = image.shape
    horizontal = one_pass(image.tolist(), coefficients(w, out_w))
    columns = [list(col) for col in zip(*horizontal)]
    vertical = one_pass(columns, coefficients(h, out_h))
    return np.array(vertical, np.uint8).T


@pytest.mark.parametrize("shape", [(100, 100, 64, 64), (37, 53, 20, 30), (28, 28, 6, 6)])
def test_resize_matches_pillow_arithmetic(shape):
    h, w, out_h, out_w = shape
    rng = np.random.default_rng(h)
    image = (rng.integers(0, 256, (h, w)) * (rng.random((h, w)) < 0.5)).astype(np.uint8)
    expected = _pillow_bilinear_reference(image, out_h, out_w)
    assert np.array_equal(pil_resize.resize_uint8(image, out_h, out_w), expected)
    # batched frames give the same answer as one at a time
    batch = np.stack([image, image[::-1]])
    assert np.array_equal(pil_resize.resize_uint8(batch, out_h, out_w)[1],
                          pil_resize.resize_uint8(image[::-1], out_h, out_w))


def test_resize_properties_and_bytescale():
    flat = np.full((100, 100), 77, np.uint8)
    assert np.all(pil_resize.resize_uint8(flat, 64, 64) == 77)
    weights = pil_resize.resize_matrix(100, 64)
    assert weights.shape == (64, 100)
    assert np.all(np.abs(weights.sum(axis=1) - 2 ** 22) <= 3)
    # 100 -> 64 shrinks, so each output averages ~3-4 inputs (an antialiasing filter)
    assert np.all((weights > 0).sum(axis=1)[1:-1] >= 3)
    frames = np.zeros((2, 4, 4))
    frames[0, 0, 0], frames[0, 1, 1] = 100.0, 50.0
    scaled = pil_resize.bytescale(frames)
    # scipy's float arithmetic: 50 * 2.55 = 127.49999999999999, so 127, not 128
    assert scaled[0, 0, 0] == 255 and scaled[0, 1, 1] == int(50 * (255 / 100) + 0.5) == 127
    assert np.all(scaled[1] == 0)                                   # constant frame -> 0
    with pytest.raises(ValueError, match="uint8"):
        pil_resize.resize_uint8(np.zeros((4, 4), np.float32), 2, 2)
    assert math.isclose(SyncMnistConfig().no_sync_prob, 1 / 92)


def test_sync_pair_accuracy_scores_the_pair_only():
    rng = np.random.default_rng(0)
    n = 3000
    digits = np.stack([rng.choice(10, 3, replace=False) for _ in range(n)])
    labels = np.array([pair_label(a, b) for a, b, _ in digits])
    labels[:30] = NO_SYNC_LABEL                                  # left out
    candidates = [[pair_label(d[i], d[j]) for i, j in ((0, 1), (0, 2), (1, 2))] for d in digits]
    # knows the digits (their pairs score high), blind to the pair (random order among them)
    blind = rng.normal(size=(n, NUM_CLASSES))
    for k, pairs in enumerate(candidates):
        blind[k, pairs] += 10.0
    accuracy, count = sync_pair_accuracy(blind, digits, labels)
    assert count == n - 30 and abs(accuracy - 1 / 3) < 0.03
    # finds the pair: the true pair first among the present ones
    seeing = blind.copy()
    for k, pairs in enumerate(candidates):
        seeing[k, labels[k]] = blind[k, pairs].max() + 1.0
    assert sync_pair_accuracy(seeing, digits, labels)[0] == 1.0
    # ties count as wrong (a constant model must not score by the digits' order)
    assert sync_pair_accuracy(np.zeros((n, NUM_CLASSES)), digits, labels)[0] == 0.0
    assert sync_pair_accuracy(blind[:5], digits[:5], np.full(5, NO_SYNC_LABEL)) == (None, 0)
    fields = sync_pair_fields(blind, digits, labels)
    assert fields["sync_pair_videos"] == n - 30 and fields["sync_pair_chance"] == 1 / 3
    # the digit part: it knows the digits, so its top-1 is always one of their pairs; a model
    # that does not picks one of the 3 present pairs about 3 times in 46
    assert fields["present_pair_top1"] == present_pair_accuracy(blind, digits, labels) == 1.0
    noise = rng.normal(size=(n, NUM_CLASSES))
    assert abs(present_pair_accuracy(noise, digits, labels) - 3 / 46) < 0.015
    # top-1 ~ present pair x sync pair: half the clips' digits forgotten
    half = blind.copy()
    half[::2] = noise[::2]
    top1 = np.mean(np.argmax(half, axis=1)[30:] == labels[30:])
    assert abs(present_pair_accuracy(half, digits, labels) - (0.5 + 0.5 * 3 / 46)) < 0.03
    assert abs(top1 - present_pair_accuracy(half, digits, labels)
               * sync_pair_accuracy(half, digits, labels)[0]) < 0.03
    assert present_pair_accuracy(blind[:5], digits[:5], np.full(5, NO_SYNC_LABEL)) is None
    with pytest.raises(ValueError, match=r"logits must be \[N, 46\]"):
        sync_pair_accuracy(blind[:, :10], digits, labels)
    with pytest.raises(ValueError, match="digits must be"):
        sync_pair_accuracy(blind, digits[:, :1], labels)
    wrong = labels.copy()
    wrong[40] = pair_label(*[c for c in range(10) if c not in digits[40]][:2])
    with pytest.raises(ValueError, match="include its labelled pair"):
        sync_pair_accuracy(blind, digits, wrong)


def test_top_k_accuracy():
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.1, 0.3, 0.6]])
    labels = np.array([1, 2, 0])
    assert top_k_accuracy(logits, labels, 1) == 1 / 3
    assert top_k_accuracy(logits, labels, 2) == 2 / 3
    assert top_k_accuracy(logits, labels, 3) == 1.0

