"""Ask a TF Serving endpoint about a clip: ``python -m export.client``.

  python -m export.client --server=localhost:8501 --model_name=rstg \\
      --tfrecord=data/syncmnist3/test-00000-of-00004.tfrecord.gz
  python -m export.client --server=localhost:8500 --protocol=grpc --video=clip.mp4 --stream

REST (``/v1/models/<name>:predict``) or gRPC (``PredictionService``, tensorflow-serving-api).
``--video`` reads any OpenCV-readable file (or a .npy uint8 [T, H, W(, C)] array), turns it
grey, resizes to --frame_size and samples --num_frames frames; ``--tfrecord`` takes the
first clip of a shard. ``--stream`` sends the frames one by one through stream_init /
stream_step and prints the running prediction after each.
"""

import json
import urllib.error
import urllib.request

import numpy as np
from absl import flags

from rstg_tf import cli

flags.DEFINE_string("server", "localhost:8501", "HOST:PORT (8501 REST, 8500 gRPC by default "
                    "in TF Serving).")
flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "Request protocol.")
flags.DEFINE_string("model_name", "rstg", "Served model name.")
flags.DEFINE_string("video", None, "A video file or .npy clip.")
flags.DEFINE_string("tfrecord", None, "A SyncMNIST shard; its first clip is sent.")
flags.DEFINE_integer("num_frames", 10, "Frames the model takes.", lower_bound=1)
flags.DEFINE_integer("frame_size", 64, "Frame height and width the model takes.",
                     lower_bound=1)
flags.DEFINE_boolean("stream", False, "Send frame by frame through stream_step.")
flags.DEFINE_float("timeout", 30.0, "Seconds per request.", lower_bound=0.1)


def load_clip(video=None, tfrecord=None, num_frames=10, frame_size=64):
    """uint8 [T, H, W, 1] from a video file, a .npy array or a SyncMNIST shard."""
    import cv2

    if (video is None) == (tfrecord is None):
        raise ValueError("give exactly one of --video and --tfrecord.")
    if tfrecord is not None:
        import tensorflow as tf
        from rstg_tf.data.video_records import IMAGE_KEY

        compression = "GZIP" if tfrecord.endswith(".gz") else (
            "ZLIB" if tfrecord.endswith(".zz") else "")
        try:
            record = next(iter(tf.data.TFRecordDataset(tfrecord, compression)))
        except (StopIteration, tf.errors.OpError) as e:
            raise ValueError(f"cannot read a clip from {tfrecord}: {e}") from None
        example = tf.train.SequenceExample.FromString(record.numpy())
        pngs = [f.bytes_list.value[0]
                for f in example.feature_lists.feature_list[IMAGE_KEY].feature]
        frames = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_GRAYSCALE) for p in pngs]
    elif video.endswith(".npy"):
        frames = list(np.load(video, allow_pickle=False))
    else:
        capture = cv2.VideoCapture(video)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
        if not frames:
            raise ValueError(f"no frames could be read from {video}.")
    frames = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.shape[-1] == 3
              else f[..., 0] for f in frames]
    picks = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    clip = np.stack([cv2.resize(frames[i], (frame_size, frame_size),
                                interpolation=cv2.INTER_AREA) for i in picks])
    return clip.astype(np.uint8)[..., None]


def checked_inputs(inputs: dict) -> dict:
    """The inputs as NumPy arrays, refusing what the signatures would not take: pixels
    ('video', 'frame') must be uint8, 'batch' a positive integer."""
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    for key in ("video", "frame"):
        if key in arrays and arrays[key].dtype != np.uint8:
            raise ValueError(f"'{key}' must be uint8 pixels, not {arrays[key].dtype}")
    if "batch" in arrays and (arrays["batch"].dtype.kind not in "iu" or arrays["batch"] < 1):
        raise ValueError(f"'batch' must be a positive integer, not {inputs['batch']!r}")
    return arrays


class RestClient:
    def __init__(self, server, model_name, timeout):
        self.url = f"http://{server}/v1/models/{model_name}:predict"
        self.timeout = timeout

    def predict(self, signature, inputs):
        body = json.dumps({"signature_name": signature,
                           "inputs": {k: v.tolist() for k, v in checked_inputs(inputs).items()}})
        request = urllib.request.Request(self.url, body.encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                outputs = json.loads(response.read())["outputs"]
        except urllib.error.HTTPError as e:
            raise ValueError(f"server said {e.code}: {e.read().decode(errors='replace')}")
        except urllib.error.URLError as e:
            raise ValueError(f"cannot reach {self.url}: {e.reason}") from None
        return {k: np.asarray(v) for k, v in outputs.items()}


class GrpcClient:
    def __init__(self, server, model_name, timeout):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(server))
        self.model_name, self.timeout = model_name, timeout

    def predict(self, signature, inputs):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature
        for key, value in checked_inputs(inputs).items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self.stub.Predict(request, self.timeout)
        except grpc.RpcError as e:
            raise ValueError(f"server said {e.code().name}: {e.details()}") from None
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def describe(outputs, row=0):
    """'name (score), ...' for one row's top-k."""
    from rstg_tf.data.syncmnist import NUM_CLASSES, label_name

    classes, scores = outputs["top_k_classes"][row], outputs["top_k_scores"][row]
    if "class_names" in outputs:
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in outputs["class_names"][row]]
    elif outputs["probabilities"].shape[-1] == NUM_CLASSES:
        names = [label_name(int(c)) for c in classes]
    else:
        names = [str(int(c)) for c in classes]
    return ", ".join(f"{n} ({s:.3f})" for n, s in zip(names, scores))


def main(argv):
    del argv
    f = flags.FLAGS
    clip = load_clip(f.video, f.tfrecord, f.num_frames, f.frame_size)
    client = (RestClient if f.protocol == "rest" else GrpcClient)(
        f.server, f.model_name, f.timeout)
    if not f.stream:
        outputs = client.predict("serving_default", {"video": clip[None]})
        print(f"top-5: {describe(outputs)}")
        return
    state = client.predict("stream_init", {"batch": np.int32(1)})
    for t, frame in enumerate(clip):
        outputs = client.predict("stream_step", {"frame": frame[None], **state})
        state = {k: outputs[k] for k in state}
        print(f"frame {t + 1}/{len(clip)}: {describe(outputs)}")


if __name__ == "__main__":
    cli.run(main)
