"""A tiny Something-Something-v1 layout: 6 readable videos of 5-12 frames (40x56 JPEGs),
4 broken ones, a labels CSV of 4 names and split CSVs."""

import os

import cv2
import numpy as np

LABELS = ["Holding something", "Pushing something from left to right",
          "Pushing something from right to left", "Tearing something"]
HEIGHT, WIDTH = 40, 56
# video id -> (frames, label index); "v1" is constant grey 115
GOOD = {"v1": (5, 0), "v2": (12, 1), "v3": (7, 2), "v4": (9, 3), "v5": (6, 0), "v6": (8, 1)}
BROKEN = {"missing": "missing frames folder", "badlabel": "unknown label 'Juggling'",
          "empty": "no JPEG frames", "corrupt": "corrupt JPEG 00003.jpg"}
ORDER = ["v1", "missing", "v2", "badlabel", "v3", "empty", "v4", "corrupt", "v5", "v6"]
GREY = 115


def frame(video: int, index: int) -> np.ndarray:
    """A distinct BGR frame: a colour per video, a bar whose position is the frame index."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:] = (40 * video % 256, 255 - 20 * video, 60)
    image[:, (4 * index) % WIDTH:(4 * index) % WIDTH + 4] = 250
    return image


def _write_jpeg(path, image) -> None:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    with open(path, "wb") as f:
        f.write(buffer.tobytes())


def make_layout(root) -> dict:
    """Writes the layout under ``root``; returns its paths."""
    root = str(root)
    frames_dir = os.path.join(root, "20bn-something-something-v1")
    for number, (video_id, (count, _)) in enumerate(sorted(GOOD.items()), 1):
        folder = os.path.join(frames_dir, video_id)
        os.makedirs(folder)
        for i in range(count):
            image = (np.full((HEIGHT, WIDTH, 3), GREY, np.uint8) if video_id == "v1"
                     else frame(number, i))
            _write_jpeg(os.path.join(folder, f"{i + 1:05d}.jpg"), image)
    os.makedirs(os.path.join(frames_dir, "badlabel"))
    _write_jpeg(os.path.join(frames_dir, "badlabel", "00001.jpg"), frame(9, 0))
    os.makedirs(os.path.join(frames_dir, "empty"))
    os.makedirs(os.path.join(frames_dir, "corrupt"))
    for i in (1, 2):
        _write_jpeg(os.path.join(frames_dir, "corrupt", f"{i:05d}.jpg"), frame(8, i))
    with open(os.path.join(frames_dir, "corrupt", "00003.jpg"), "wb") as f:
        f.write(b"not a jpeg at all")
    labels_csv = os.path.join(root, "labels.csv")
    with open(labels_csv, "w") as f:
        f.write("\n".join(LABELS) + "\n")
    split_csv = os.path.join(root, "train.csv")
    with open(split_csv, "w") as f:
        for video_id in ORDER:
            label = "Juggling" if video_id == "badlabel" else LABELS[GOOD.get(video_id,
                                                                              (0, 0))[1]]
            f.write(f"{video_id};{label}\n")
    test_csv = os.path.join(root, "test.csv")
    with open(test_csv, "w") as f:
        f.write("v2\nv3\n")
    return {"root": root, "frames_dir": frames_dir, "labels_csv": labels_csv,
            "split_csv": split_csv, "test_csv": test_csv}


def convert(layout: dict, output_dir, split="train", **kwargs) -> dict:
    from rstg_tf.data import smth

    csv = layout["test_csv"] if split == "test" else layout["split_csv"]
    entries = smth.frame_entries(layout["frames_dir"], csv, labelled=split != "test")
    options = dict(num_shards=3, verbose=False)
    options.update(kwargs)
    return smth.convert_split(str(output_dir), split, entries, smth.read_labels(
        layout["labels_csv"]), **options)
