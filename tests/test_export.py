"""SavedModel export for TF Serving: signatures, equality with Keras, streaming, input
checks, core-TF ops only, warmup, versions, the development server and the client."""

import concurrent.futures
import json
import os
import re
import threading
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

from rstg_tf.config import RSTGConfig
from rstg_tf.models import ModelConfig, build_model
from rstg_tf.serving.saved_model import WARMUP_FILE, export_saved_model
from tests.helpers import run_python

T = 4
CONFIG = ModelConfig(num_filters=4, num_frames=T, hidden=8,
                     rstg=RSTGConfig(node_dim=8, message_dim=6, num_iterations=2))


def _clips(batch=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, T, 64, 64, 1)).astype("uint8")


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A model directory as python -m train leaves it (random weights suffice)."""
    model_dir = tmp_path_factory.mktemp("run")
    model = build_model(CONFIG)
    model(_clips(1))
    model.save(str(model_dir / "best.keras"))
    (model_dir / "config.json").write_text(json.dumps({"model": CONFIG.to_dict()}))
    return model_dir, model


@pytest.fixture(scope="module")
def exported(trained_dir, tmp_path_factory):
    model_dir, _ = trained_dir
    base = tmp_path_factory.mktemp("serving")
    labels = base / "labels.txt"
    labels.write_text("\n".join(f"class {i}" for i in range(46)) + "\n")
    result = run_python(["-m", "export", f"--model_dir={model_dir}", f"--export_base={base}",
                         "--model_name=rstg", f"--label_file={labels}",
                         "--weights_dtype=float32"])
    assert result.returncode == 0, result.stderr[-3000:]
    return base, base / "rstg" / "1"


def test_layout_versions_and_server_configs(exported, trained_dir):
    base, path = exported
    assert (path / "saved_model.pb").exists() and (path / WARMUP_FILE).exists()
    assert 'base_path: "/models/rstg"' in (base / "models.config").read_text()
    assert "max_batch_size" in (base / "batching_parameters.txt").read_text()
    model_dir, model = trained_dir
    second = export_saved_model(model, CONFIG, str(base), "rstg", warmup=False)
    assert second.endswith(os.path.join("rstg", "2"))
    again = run_python(["-m", "export", f"--model_dir={model_dir}", f"--export_base={base}",
                        "--version=1"])
    assert again.returncode == 2 and "never overwritten" in again.stderr
    bad = run_python(["-m", "export", f"--model_dir={model_dir}", f"--export_base={base}",
                      "--weights_dtype=int8"])
    assert bad.returncode == 2 and "--weights_dtype" in bad.stderr, bad.stderr[-2000:]
    assert "Traceback" not in bad.stderr
    assert not [d for d in os.listdir(base / "rstg") if d.startswith(".tmp")]
    from tensorflow_serving.apis import prediction_log_pb2
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(str(path / WARMUP_FILE))]
    signatures = [log.predict_log.request.model_spec.signature_name for log in logs]
    assert signatures.count("serving_default") == 2 and "stream_step" in signatures


def test_loads_without_rstg_tf_and_cli_lists_signatures(exported):
    _, path = exported
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "rstg_tf" or name.startswith("rstg_tf."):
            raise ImportError("rstg_tf must not be needed to serve")
sys.meta_path.insert(0, Block())
import numpy as np, tensorflow as tf
m = tf.saved_model.load({str(path)!r})
out = m.signatures["serving_default"](video=tf.zeros((3, {T}, 64, 64, 1), tf.uint8))
print(sorted(m.signatures), out["probabilities"].shape, out["class_names"].shape,
      "rstg_tf" in sys.modules)
"""
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "['serving_default', 'stream_init', 'stream_step'] (3, 46) (3, 5) False" in \
        result.stdout
    show = run_python(["-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
                       str(path), "--all"])
    assert show.returncode == 0, show.stderr[-2000:]
    text = show.stdout
    for expected in ("signature_def['serving_default']", "signature_def['stream_init']",
                     "signature_def['stream_step']", "inputs['video'] tensor_info:",
                     f"shape: (-1, {T}, 64, 64, 1)", "dtype: DT_UINT8",
                     "outputs['top_k_classes']", "dtype: DT_INT32", "outputs['t0_h']",
                     "inputs['frame'] tensor_info:", "shape: (-1, 64, 64, 1)"):
        assert expected in text, expected


def test_signatures_use_core_tf_ops_only(exported):
    from tensorflow.python.framework import op_def_registry

    _, path = exported
    loaded = tf.saved_model.load(str(path))
    for name, function in loaded.signatures.items():
        graph_def = function.graph.as_graph_def()
        ops = {n.op for n in graph_def.node}
        for f in graph_def.library.function:
            ops |= {n.op for n in f.node_def}
        assert ops and not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, name
        unknown = sorted(op for op in ops if op_def_registry.get(op) is None)
        assert not unknown, (name, unknown)


def test_clip_signature_equals_keras(exported, trained_dir):
    _, path = exported
    _, model = trained_dir
    clips = _clips(3, seed=1)
    out = tf.saved_model.load(str(path)).signatures["serving_default"](video=tf.constant(clips))
    expected = tf.nn.softmax(model(clips)).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    top = np.argsort(-expected, axis=1)[:, :5]
    np.testing.assert_array_equal(out["top_k_classes"].numpy(), top)
    assert out["top_k_classes"].dtype == tf.int32
    assert out["class_names"].numpy()[0, 0].decode() == f"class {top[0, 0]}"


@pytest.mark.parametrize("readout", ["mean_time", "last_step"])
def test_stream_steps_equal_the_clip(tmp_path, readout):
    config = CONFIG.replace(rstg=CONFIG.rstg.replace(readout=readout))
    model = build_model(config)
    clips = _clips(2, seed=2)
    expected = tf.nn.softmax(model(clips)).numpy()
    path = export_saved_model(model, config, str(tmp_path), "m", warmup=False)
    loaded = tf.saved_model.load(path)
    state = loaded.signatures["stream_init"](batch=tf.constant(2))
    if readout == "mean_time":
        assert {"readout_sum", "num_frames"} <= set(state)
    for t in range(T):
        out = loaded.signatures["stream_step"](frame=tf.constant(clips[:, t]), **state)
        state = {k: out[k] for k in state}
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)


def _logits(probabilities):
    """Logits up to a per-row constant, from probabilities."""
    log = np.log(probabilities)
    return log - log.mean(axis=-1, keepdims=True)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_weights_export(tmp_path, dtype):
    keras.utils.set_random_seed(7)          # logits of a useful scale (0.17)
    model = build_model(CONFIG)
    path = export_saved_model(model, CONFIG, str(tmp_path), "m", warmup=False,
                              weights_dtype=dtype)
    loaded = tf.saved_model.load(path)
    dtypes = {v.dtype for v in loaded.model_variables}
    assert dtypes == {tf.as_dtype(dtype), tf.float32}   # the classifier stays float32
    assert sum(v.dtype == tf.float32 for v in loaded.model_variables) == 2
    stored = sum(v.shape.num_elements() * v.dtype.size for v in loaded.model_variables)
    assert stored < 0.6 * sum(w.numpy().nbytes for w in model.weights)
    clips = _clips(3, seed=3)
    expected = _logits(tf.nn.softmax(model(clips)).numpy())
    out = loaded.signatures["serving_default"](video=tf.constant(clips))
    clip = _logits(out["probabilities"].numpy())
    scale = np.abs(expected).max()
    assert 0 < np.abs(clip - expected).max() <= 0.03 * scale + 1e-3
    state = loaded.signatures["stream_init"](batch=tf.constant(3))
    assert {v.dtype for v in state.values()} == {tf.float32}
    for t in range(T):
        step = loaded.signatures["stream_step"](frame=tf.constant(clips[:, t]), **state)
        state = {k: step[k] for k in state}
    np.testing.assert_allclose(_logits(step["probabilities"].numpy()), clip,
                               atol=0.03 * scale + 1e-3)
    with pytest.raises(ValueError, match="weights dtype must be one of"):
        export_saved_model(model, CONFIG, str(tmp_path), "m", weights_dtype="int8")
    assert sorted(os.listdir(tmp_path / "m")) == ["1"]


def test_bad_inputs_get_clear_errors(exported):
    _, path = exported
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch"):
        serve(video=tf.zeros((0, T, 64, 64, 1), tf.uint8))
    for bad in (tf.zeros((1, T, 64, 64, 1), tf.float32),       # dtype
                tf.zeros((1, 64, 64, 1), tf.uint8),            # rank
                tf.zeros((1, T, 32, 32, 1), tf.uint8),          # frame size
                tf.zeros((1, T + 1, 64, 64, 1), tf.uint8)):     # frames
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            serve(video=bad)


@pytest.fixture(scope="module")
def server(exported):
    from export.serve import make_server

    base, _ = exported
    httpd = make_server(str(base), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _post(server, path, body, raw=False):
    data = body if raw else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server}{path}", data,
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_dev_server_under_concurrent_good_and_bad_requests(server, trained_dir):
    _, model = trained_dir
    clips = _clips(4, seed=3)
    expected = tf.nn.softmax(model(clips)).numpy()
    good = {"instances": clips[:1].tolist()}
    cases = []
    for i in range(100):
        kind = ["good", "good", "good", "bad_json", "bad_shape", "unknown_model",
                "bad_signature", "empty"][i % 8]
        cases.append(kind)

    def send(kind):
        if kind == "good":
            return kind, _post(server, "/v1/models/rstg:predict", good)
        if kind == "bad_json":
            return kind, _post(server, "/v1/models/rstg:predict", b"{not json", raw=True)
        if kind == "bad_shape":
            return kind, _post(server, "/v1/models/rstg:predict",
                               {"instances": np.zeros((1, T, 8, 8, 1), int).tolist()})
        if kind == "unknown_model":
            return kind, _post(server, "/v1/models/nope:predict", good)
        if kind == "bad_signature":
            return kind, _post(server, "/v1/models/rstg:predict",
                               {"signature_name": "nope", **good})
        return kind, _post(server, "/v1/models/rstg:predict", {"instances": []})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:  # more than the default backlog
        results = list(pool.map(send, cases))
    for kind, (status, body) in results:
        if kind == "good":
            assert status == 200, body
            np.testing.assert_allclose(body["predictions"][0]["probabilities"], expected[0],
                                       atol=1e-5)
        else:
            assert status in (400, 404) and "error" in body, (kind, status, body)
            assert status == (404 if kind in ("unknown_model", "bad_signature") else 400)
    status, body = _post(server, "/v1/models/rstg:predict", {"inputs": {"video": clips.tolist()}})
    assert status == 200 and np.allclose(body["outputs"]["probabilities"], expected, atol=1e-5)
    with urllib.request.urlopen(f"http://{server}/v1/models/rstg", timeout=30) as r:
        assert json.loads(r.read())["model_version_status"][0]["state"] == "AVAILABLE"


def test_dev_server_accepts_a_burst_of_connections(server):
    """socketserver's default listen backlog (5) reset connections under bursts."""
    body = {"signature_name": "serving_default", "no_inputs": [0] * 100_000}

    def status(_):
        return _post(server, "/v1/models/rstg:predict", body)[0]
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        assert set(pool.map(status, range(640))) == {400}


def test_client_rest_clip_and_stream(server, tmp_path):
    clip = _clips(1, seed=4)[0]
    np.save(tmp_path / "clip.npy", clip)
    common = ["-m", "export.client", f"--server={server}", "--model_name=rstg",
              f"--video={tmp_path / 'clip.npy'}", f"--num_frames={T}"]
    result = run_python(common)
    assert result.returncode == 0, result.stderr[-3000:]
    # five "name (score)" entries: label-file names, or SyncMNIST's for version 2
    assert re.fullmatch(r"top-5: ([^,()]+ \(\d\.\d{3}\)(, )?){5}", result.stdout.strip())
    streamed = run_python([*common, "--stream"])
    assert streamed.returncode == 0, streamed.stderr[-3000:]
    lines = streamed.stdout.strip().splitlines()
    assert len(lines) == T and lines[-1].startswith(f"frame {T}/{T}: ")
    # the running prediction after the last frame is the clip's prediction
    assert lines[-1].split(": ", 1)[1] == result.stdout.split(": ", 1)[1].strip()
    down = run_python(["-m", "export.client", "--server=127.0.0.1:9", f"--video="
                       f"{tmp_path / 'clip.npy'}", f"--num_frames={T}", "--timeout=5"])
    assert down.returncode == 2 and "cannot reach" in down.stderr


def test_client_grpc_against_a_prediction_service(exported, tmp_path):
    """The gRPC client against a minimal PredictionService (tensorflow-serving-api's
    protos and stubs) that runs the exported signatures — TF Serving's gRPC contract."""
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    _, path = exported
    loaded = tf.saved_model.load(str(path))

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (gRPC naming)
            function = loaded.signatures[request.model_spec.signature_name]
            outputs = function(**{k: tf.constant(tf.make_ndarray(v))
                                  for k, v in request.inputs.items()})
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    grpc_server = grpc.server(futures.ThreadPoolExecutor(4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        clip = _clips(1, seed=5)[0]
        np.save(tmp_path / "clip.npy", clip)
        common = ["-m", "export.client", f"--server=127.0.0.1:{port}", "--protocol=grpc",
                  f"--video={tmp_path / 'clip.npy'}", f"--num_frames={T}"]
        clip_run, stream_run = run_python(common), run_python([*common, "--stream"])
        assert clip_run.returncode == 0, clip_run.stderr[-3000:]
        assert stream_run.returncode == 0, stream_run.stderr[-3000:]
        assert clip_run.stdout.startswith("top-5: class ")
        last = stream_run.stdout.strip().splitlines()[-1]
        assert last.split(": ", 1)[1] == clip_run.stdout.split(": ", 1)[1].strip()
    finally:
        grpc_server.stop(None)
