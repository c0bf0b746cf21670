"""A development stand-in for TF Serving's REST API: ``python -m export.serve``.

  python -m export.serve --export_base=serving --port=8501

NOT the production server (use the tensorflow/serving image, docs/serving.md): a small
threaded
HTTP server that loads the newest version of every model under --export_base with
``tf.saved_model.load`` and answers TF Serving's REST predict protocol for its signatures:

  POST /v1/models/<name>[/versions/<v>]:predict
       {"signature_name": "...", "instances": [...]}  -> {"predictions": [...]}
       {"signature_name": "...", "inputs": {...}}     -> {"outputs": {...}}
  GET  /v1/models/<name>                               -> version status

Bad JSON, wrong shapes or dtypes -> 400, unknown model or signature -> 404, each with TF
Serving's {"error": "..."} body; the server keeps serving. Binds to 127.0.0.1 by default.
"""

import json
import os
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from absl import flags

from train import cli

flags.DEFINE_string("export_base", None, "Directory with <model_name>/<version>/ exports.")
flags.DEFINE_string("host", "127.0.0.1", "Interface to bind (127.0.0.1: this machine only).")
flags.DEFINE_integer("port", 8501, "Port.", lower_bound=0, upper_bound=65535)
flags.mark_flag_as_required("export_base")

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<verb>:predict)?$")


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ModelStore:
    """Every model under the export base, newest version loaded (lazily, once)."""

    def __init__(self, export_base: str):
        if not os.path.isdir(export_base):
            raise FileNotFoundError(f"export base {export_base} does not exist.")
        self.export_base = export_base
        self._loaded, self._lock = {}, threading.Lock()

    def get(self, name: str, version=None):
        import tensorflow as tf

        root = os.path.join(self.export_base, name)
        found = sorted(int(v) for v in os.listdir(root) if v.isdigit()) \
            if os.path.isdir(root) else []
        if not found:
            raise RequestError(HTTPStatus.NOT_FOUND, f"Servable not found for request: "
                               f"Latest({name})")
        version = int(version) if version is not None else found[-1]
        if version not in found:
            raise RequestError(HTTPStatus.NOT_FOUND, f"Servable not found for request: "
                               f"Specific({name}, {version})")
        with self._lock:
            if (name, version) not in self._loaded:
                self._loaded[(name, version)] = tf.saved_model.load(
                    os.path.join(root, str(version)))
        return version, self._loaded[(name, version)]


def _to_tensor(value, spec, name):
    import numpy as np
    import tensorflow as tf

    try:
        array = np.asarray(value, dtype=spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError) as e:
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"input '{name}' is not {spec.dtype.name}: {e}") from None
    if not spec.shape.is_compatible_with(array.shape):
        raise RequestError(HTTPStatus.BAD_REQUEST,
                           f"input '{name}' has shape {list(array.shape)}; the signature "
                           f"expects {spec.shape.as_list()} (None: any size)")
    return tf.constant(array)


def _jsonable(value):
    import numpy as np

    array = value.numpy()
    if array.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array).tolist()
    return array.tolist()


def predict(store: ModelStore, name: str, version, body: dict) -> dict:
    """TF Serving's REST predict for one request body."""
    import tensorflow as tf

    _, model = store.get(name, version)
    signature_name = body.get("signature_name", "serving_default")
    if signature_name not in model.signatures:
        raise RequestError(HTTPStatus.NOT_FOUND, f"Serving signature name: "
                           f"\"{signature_name}\" not found in signature def")
    function = model.signatures[signature_name]
    specs = function.structured_input_signature[1]
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(HTTPStatus.BAD_REQUEST, "Missing 'inputs' or 'instances' key "
                           "(exactly one of them)")
    row_format = "instances" in body
    if row_format:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(HTTPStatus.BAD_REQUEST, "'instances' must be a non-empty list")
        if len(specs) == 1:
            inputs = {next(iter(specs)): instances}
        elif all(isinstance(i, dict) for i in instances):
            inputs = {k: [i.get(k) for i in instances] for k in specs}
        else:
            raise RequestError(HTTPStatus.BAD_REQUEST, "instances must be objects naming "
                               f"the inputs {sorted(specs)}")
    else:
        inputs = body["inputs"]
        if len(specs) == 1 and not isinstance(inputs, dict):
            inputs = {next(iter(specs)): inputs}
        if not isinstance(inputs, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "'inputs' must be an object")
    missing = sorted(set(specs) - set(inputs))
    extra = sorted(set(inputs) - set(specs))
    if missing or extra:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"inputs must be {sorted(specs)}; "
                           f"missing {missing}, unexpected {extra}")
    tensors = {k: _to_tensor(inputs[k], specs[k], k) for k in specs}
    try:
        outputs = function(**tensors)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        message = getattr(e, "message", str(e)).strip().splitlines()
        raise RequestError(HTTPStatus.BAD_REQUEST, message[-1] if message else str(e))
    outputs = {k: _jsonable(v) for k, v in outputs.items()}
    if not row_format:
        return {"outputs": outputs}
    rows = len(next(iter(outputs.values())))
    predictions = [{k: v[i] for k, v in outputs.items()} for i in range(rows)]
    return {"predictions": predictions}


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: with more concurrent clients than that while the
    # handlers hold the CPU, the kernel's accept queue overflows and clients get
    # "Connection reset by peer" (seen in CI with 16 clients; 64 clients x 2000 requests:
    # 164 resets at 5, none at 128).
    request_queue_size = 128
    daemon_threads = True


def make_server(export_base: str, host: str = "127.0.0.1", port: int = 8501):
    store = ModelStore(export_base)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            match = _PATH.match(self.path)
            if not match:
                raise RequestError(HTTPStatus.NOT_FOUND, f"Malformed request: "
                                   f"{self.command} {self.path}")
            return match

        def do_GET(self):  # noqa: N802 (http.server's naming)
            try:
                match = self._route()
                version, _ = store.get(match["name"], match["version"])
                self._reply(HTTPStatus.OK, {"model_version_status": [
                    {"version": str(version), "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}}]})
            except RequestError as e:
                self._reply(e.status, {"error": str(e)})

        def do_POST(self):  # noqa: N802
            try:
                match = self._route()
                if not match["verb"]:
                    raise RequestError(HTTPStatus.NOT_FOUND, "only :predict is supported")
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError as e:
                    raise RequestError(HTTPStatus.BAD_REQUEST, f"JSON Parse error: {e}")
                if not isinstance(body, dict):
                    raise RequestError(HTTPStatus.BAD_REQUEST, "the request body must be "
                                       "a JSON object")
                self._reply(HTTPStatus.OK, predict(store, match["name"], match["version"],
                                                   body))
            except RequestError as e:
                self._reply(e.status, {"error": str(e)})

        def log_message(self, *args):  # quiet
            pass

    return _Server((host, port), Handler)


def main(argv):
    del argv
    f = flags.FLAGS
    server = make_server(f.export_base, f.host, f.port)
    host, port = server.server_address[:2]
    print(f"development server (not TF Serving) on http://{host}:{port}/v1/models/...",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    cli.run(main)
