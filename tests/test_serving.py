"""SavedModel export for TF Serving and serving it: signatures, equality with Keras,
streaming, input checks in the graph, core-TF ops only, warmup, versions; the development
server's answers to every kind of bad request (one table), its limits, a load test; the
REST and gRPC clients."""

import concurrent.futures
import functools
import json
import os
import re
import threading
import time
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

from export.load_test import run_load, send
from export.serve import ServerLimits, make_server
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


@functools.lru_cache(maxsize=None)
def _state_shapes(path):
    """{state name: shape after the batch} of stream_step's signature (loaded once)."""
    specs = tf.saved_model.load(path).signatures["stream_step"].structured_input_signature[1]
    return {k: tuple(v.shape[1:]) for k, v in specs.items() if k != "frame"}


def _state(path, batch):
    """Zero state of ``batch`` streams, shaped as stream_step's signature takes it."""
    return {k: np.zeros([batch, *shape], np.float32)
            for k, shape in _state_shapes(str(path)).items()}


def test_bad_inputs_get_clear_errors(exported):
    """In the signatures themselves, so TF Serving users get the same checks."""
    _, path = exported
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch"):
        serve(video=tf.zeros((0, T, 64, 64, 1), tf.uint8))
    for bad in (tf.zeros((1, T, 64, 64, 1), tf.float32),       # dtype
                tf.zeros((1, 64, 64, 1), tf.uint8),            # rank
                tf.zeros((1, T, 32, 32, 1), tf.uint8),          # frame size
                tf.zeros((1, T + 1, 64, 64, 1), tf.uint8)):     # frames
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            serve(video=bad)
    step = loaded.signatures["stream_step"]
    for frames, states in ((1, 2), (2, 1), (2, 3)):           # the batches must agree
        state = {k: tf.constant(v) for k, v in _state(path, states).items()}
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=f"differ in batch size.*\\[{states}\\].*\\[{frames}\\]"):
            step(frame=tf.zeros((frames, 64, 64, 1), tf.uint8), **state)


LIMITS = ServerLimits(max_batch=8, max_body_bytes=2 << 20, read_timeout_s=1.0)


@pytest.fixture(scope="module")
def server(exported):
    base, _ = exported
    httpd = make_server(str(base), "127.0.0.1", 0, LIMITS)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[:2]
    httpd.shutdown()
    httpd.server_close()


def _post(address, path, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, payload, _ = send(address, path, data, headers)
    return status, payload


PREDICT = "/v1/models/rstg:predict"
CLIP = np.zeros((1, T, 64, 64, 1), int)


def _clip_with(value):
    clip = CLIP.tolist()
    clip[0][0][0][0][0] = value
    return {"instances": clip}


def _init(batch):
    return {"signature_name": "stream_init", "inputs": {"batch": batch}}


# (case, path, body (bytes: sent as is), extra headers, status, fragment of the error)
BAD_REQUESTS = [
    ("bad JSON", PREDICT, b"{not json", {}, 400, "JSON Parse error"),
    ("not an object", PREDICT, [1, 2], {}, 400, "must be a JSON object"),
    ("no inputs", PREDICT, {"signature_name": "serving_default"}, {}, 400,
     "Missing 'inputs' or 'instances'"),
    ("empty instances", PREDICT, {"instances": []}, {}, 400, "non-empty list"),
    ("uint8 300", PREDICT, {"instances": [300]}, {}, 400, "values in [0, 255]"),
    ("uint8 -1", PREDICT, {"instances": [-1]}, {}, 400, "values in [0, 255]"),
    ("uint8 0.5", PREDICT, _clip_with(0.5), {}, 400, "a non-integer number"),
    ("uint8 7.9", PREDICT, _clip_with(7.9), {}, 400, "a non-integer number"),
    ("uint8 true", PREDICT, _clip_with(True), {}, 400, "a boolean"),
    ("uint8 all false", PREDICT, {"instances": np.zeros((1, T, 64, 64, 1), bool).tolist()},
     {}, 400, "a boolean"),
    ("uint8 null", PREDICT, _clip_with(None), {}, 400, "not numbers"),
    ("uint8 2**70", PREDICT, _clip_with(2 ** 70), {}, 400, "integers over 64 bits"),
    ("ragged", PREDICT, {"instances": [[1, 2], [3]]}, {}, 400, "rectangular"),
    ("wrong shape", PREDICT, {"instances": np.zeros((1, T, 8, 8, 1), int).tolist()}, {},
     400, "has shape [1, 4, 8, 8, 1]"),
    ("batch over the limit", PREDICT, {"instances": np.zeros((9, 1), int).tolist()}, {},
     400, "has a batch of 9; this server takes at most 8"),
    ("unknown model", "/v1/models/nope:predict", {"instances": CLIP.tolist()}, {}, 404,
     "Servable not found"),
    ("unknown version", "/v1/models/rstg/versions/7:predict", {"instances": CLIP.tolist()},
     {}, 404, "Specific(rstg, 7)"),
    ("unknown signature", PREDICT, {"signature_name": "nope", "instances": [1]}, {}, 404,
     "not found in signature def"),
    ("signature not a string", PREDICT, {"signature_name": 3, "instances": [1]}, {}, 400,
     "must be a string"),
    ("not :predict", "/v1/models/rstg", {"instances": [1]}, {}, 404, "only :predict"),
    ("malformed path", "/v2/nope", {}, {}, 404, "Malformed request"),
    ("init batch 0", PREDICT, _init(0), {}, 400,
     "'batch' must be a positive number of streams (got 0)"),
    ("init batch 2**31", PREDICT, _init(2 ** 31), {}, 400, "values in [-2147483648"),
    ("init batch 2**31 - 1", PREDICT, _init(2 ** 31 - 1), {}, 400,
     "asks for 2147483647 streams; this server takes at most 8"),
    ("init batch 1.5", PREDICT, _init(1.5), {}, 400, "a non-integer number"),
    ("init batch true", PREDICT, _init(True), {}, 400, "a boolean"),
    ("Content-Length abc", PREDICT, {"instances": [1]}, {"Content-Length": "abc"}, 400,
     "Content-Length 'abc' is not a number"),
    ("Content-Length -5", PREDICT, {"instances": [1]}, {"Content-Length": "-5"}, 400,
     "negative"),
    ("body over the limit", PREDICT, {"instances": [1]}, {"Content-Length": str(3 << 20)},
     413, "over this server's limit of 2097152 bytes"),
]


@pytest.mark.parametrize("case,path,body,headers,status,fragment", BAD_REQUESTS,
                         ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_clear_answer(server, case, path, body, headers, status,
                                         fragment):
    got, payload = _post(server, path, body, headers)
    assert (got, fragment in payload.get("error", "")) == (status, True), payload


@pytest.mark.parametrize("frames,states", [(1, 2), (2, 1), (2, 3)])
def test_stream_step_refuses_a_state_of_another_batch(server, exported, frames, states):
    _, path = exported
    state = {k: v.tolist() for k, v in _state(path, states).items()}
    status, payload = _post(server, PREDICT, {"signature_name": "stream_step", "inputs": {
        "frame": np.zeros((frames, 64, 64, 1), int).tolist(), **state}})
    assert status == 400, payload
    assert re.fullmatch(r"state '\w+' and 'frame' differ in batch size \(state vs frame\) "
                        rf"\(got {states}, {frames}\)", payload["error"]), payload


def test_a_silent_client_gets_408_and_the_server_goes_on(server):
    """A body declared at 1 kB of which 2 bytes arrive: answered after read_timeout_s."""
    start = time.monotonic()
    status, payload = _post(server, PREDICT, b"{}", {"Content-Length": "1000"})
    assert status == 408 and "did not arrive within 1 s" in payload["error"]
    assert time.monotonic() - start < 10
    assert _post(server, PREDICT, _init(2))[0] == 200


def test_a_good_request_after_bad_ones_on_one_connection(server):
    """Keep-alive: an error answer leaves the connection usable when the body was read."""
    import http.client

    connection = http.client.HTTPConnection(*server, timeout=30)
    try:
        for body, expected in ((b"[1]", 400), (json.dumps(_init(3)).encode(), 200)):
            connection.request("POST", PREDICT, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == expected, response.read()
            response.read()
    finally:
        connection.close()


def test_load_good_answers_and_4xx_under_concurrency(exported, trained_dir):
    """200 requests, a third malformed, 16 threads: every good one gets the lone answer
    (which equals Keras), every bad one a 4xx, all within the time limit."""
    base, _ = exported
    _, model = trained_dir
    result = run_load(str(base), requests=200, malformed=1 / 3, concurrency=16, clips=2,
                      time_limit_s=120, limits=LIMITS)
    assert result["failures"] == [], result["failures"][:5]
    assert result["malformed"] == 66 and result["good"]["count"] == 134
    assert result["malformed_answers"]["count"] == 66
    clip = np.random.default_rng(0).integers(0, 256, (T, 64, 64, 1), dtype=np.uint8)
    expected = tf.nn.softmax(model(clip[None])).numpy()[0]
    np.testing.assert_allclose(result["answers"][0]["probabilities"], expected, atol=1e-5)


def test_good_requests_in_both_formats_and_the_status(server, trained_dir):
    _, model = trained_dir
    clips = _clips(3, seed=3)
    expected = tf.nn.softmax(model(clips)).numpy()
    status, rows = _post(server, PREDICT, {"instances": clips.tolist()})
    assert status == 200 and len(rows["predictions"]) == 3
    np.testing.assert_allclose([r["probabilities"] for r in rows["predictions"]], expected,
                               atol=1e-5)
    status, columns = _post(server, "/v1/models/rstg/versions/1:predict",
                            {"inputs": {"video": clips.tolist()}})
    assert status == 200
    np.testing.assert_allclose(columns["outputs"]["probabilities"], expected, atol=1e-5)
    status, state = _post(server, PREDICT, _init(8))         # the limit itself is allowed
    assert status == 200 and {len(v) for v in state["outputs"].values()} == {8}
    with urllib.request.urlopen(f"http://{server[0]}:{server[1]}/v1/models/rstg",
                                timeout=30) as r:
        assert json.loads(r.read())["model_version_status"][0]["state"] == "AVAILABLE"


def test_dev_server_accepts_a_burst_of_connections(server):
    """socketserver's default listen backlog (5) reset connections under bursts."""
    body = {"signature_name": "serving_default", "no_inputs": [0] * 100_000}

    def status(_):
        return _post(server, PREDICT, body)[0]
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        assert set(pool.map(status, range(640))) == {400}


def test_client_rest_clip_and_stream(server, tmp_path):
    clip = _clips(1, seed=4)[0]
    np.save(tmp_path / "clip.npy", clip)
    common = ["-m", "export.client", f"--server={server[0]}:{server[1]}", "--model_name=rstg",
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


def test_the_client_never_sends_what_the_signatures_refuse():
    code = """
import numpy as np
from export.client import checked_inputs
ok = checked_inputs({"frame": np.zeros((1, 2, 2, 1), np.uint8), "batch": np.int32(2)})
print(sorted(ok), ok["frame"].dtype)
for bad in ({"video": np.full((1, 1), 0.5)}, {"frame": np.zeros((1, 1), bool)},
            {"batch": 0}, {"batch": 1.5}):
    try:
        checked_inputs(bad)
        print("accepted", bad)
    except ValueError as e:
        print("refused:", e)
"""
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "['batch', 'frame'] uint8"
    assert lines[1:] == ["refused: 'video' must be uint8 pixels, not float64",
                         "refused: 'frame' must be uint8 pixels, not bool",
                         "refused: 'batch' must be a positive integer, not 0",
                         "refused: 'batch' must be a positive integer, not 1.5"], lines
