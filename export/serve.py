"""A development stand-in for TF Serving's REST API: ``python -m export.serve``.

  python -m export.serve --export_base=serving --port=8501

NOT the production server (use the tensorflow/serving image, docs/serving.md): a small
threaded HTTP server that loads the newest version of every model under --export_base with
``tf.saved_model.load`` and answers TF Serving's REST predict protocol for its signatures:

  POST /v1/models/<name>[/versions/<v>]:predict
       {"signature_name": "...", "instances": [...]}  -> {"predictions": [...]}
       {"signature_name": "...", "inputs": {...}}     -> {"outputs": {...}}
  GET  /v1/models/<name>                               -> version status

Every bad request gets an answer with TF Serving's {"error": "..."} body and the server
keeps serving: bad JSON, a bad Content-Length, values a cast would change (floats or
booleans for uint8, out-of-range integers), wrong shapes, and the model's own checks (an
empty batch, a state that does not fit the frame) -> 400 with the line that says what is
wrong; unknown model or signature -> 404. Limits (``ServerLimits``, flags below): a batch
over --max_batch -> 400, a body over --max_body_mb -> 413, a connection silent for
--read_timeout_s -> 408 and closed (the checks of a request's body:
``export.rest_requests``). Binds to 127.0.0.1 by default.
"""

import json
import os
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from absl import flags

from export.rest_requests import (RequestError, ServerLimits, bad_request, content_length,
                                  model_error_message, request_inputs)
from rstg_tf import cli

flags.DEFINE_string("export_base", None, "Directory with <model_name>/<version>/ exports.")
flags.DEFINE_string("host", "127.0.0.1", "Interface to bind (127.0.0.1: this machine only).")
flags.DEFINE_integer("port", 8501, "Port.", lower_bound=0, upper_bound=65535)
flags.DEFINE_integer("max_batch", 64, "Most clips, frames or streams in one request.",
                     lower_bound=1)
flags.DEFINE_float("max_body_mb", 32.0, "Largest request body, in MiB (a 10 x 64 x 64 clip is "
                   "~0.1 MiB of JSON).", lower_bound=0.001)
flags.DEFINE_float("read_timeout_s", 30.0, "Seconds a connection may stay silent (a slow "
                   "body, an idle keep-alive) before the server closes it.", lower_bound=0.01)
flags.mark_flag_as_required("export_base")

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<verb>:predict)?$")


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

    def signature(self, name: str, version, signature_name: str):
        """The concrete function serving ``signature_name`` of a model (404 if none)."""
        _, model = self.get(name, version)
        if signature_name not in model.signatures:
            raise RequestError(HTTPStatus.NOT_FOUND, f"Serving signature name: "
                               f"\"{signature_name}\" not found in signature def")
        return model.signatures[signature_name]

    def input_spec(self, name: str, signature_name: str, input_name: str):
        """The ``tf.TensorSpec`` of one input of a signature of the newest version."""
        function = self.signature(name, None, signature_name)
        return function.structured_input_signature[1][input_name]


def _jsonable(value):
    import numpy as np

    array = value.numpy()
    if array.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array).tolist()
    return array.tolist()


def predict(store: ModelStore, name: str, version, body: dict,
            limits: ServerLimits = ServerLimits()) -> dict:
    """TF Serving's REST predict for one request body."""
    import tensorflow as tf

    signature_name = body.get("signature_name", "serving_default")
    if not isinstance(signature_name, str):
        raise bad_request(f"'signature_name' must be a string, not {signature_name!r}")
    function = store.signature(name, version, signature_name)
    specs = function.structured_input_signature[1]
    row_format, arrays = request_inputs(body, specs, limits.max_batch)
    tensors = {k: tf.constant(v) for k, v in arrays.items()}
    try:
        outputs = function(**tensors)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        raise bad_request(model_error_message(e)) from None
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


def make_server(export_base: str, host: str = "127.0.0.1", port: int = 8501,
                limits: ServerLimits = ServerLimits()):
    """A ``ThreadingHTTPServer`` answering TF Serving's REST API for the models under
    ``export_base`` (``server.store``: their ``ModelStore``); call ``serve_forever``."""
    store = ModelStore(export_base)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = limits.read_timeout_s     # the socket's: a silent client times out

        def _reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            match = _PATH.match(self.path)
            if not match:
                raise RequestError(HTTPStatus.NOT_FOUND, f"Malformed request: "
                                   f"{self.command} {self.path}")
            return match

        def _answer(self, respond):
            """Replies with ``respond()``'s payload, or an error body for any failure:
            every request gets an answer."""
            try:
                self._reply(HTTPStatus.OK, respond())
                return
            except RequestError as e:
                self._reply(e.status, {"error": str(e)})
            except TimeoutError:
                self.close_connection = True
                self._reply(HTTPStatus.REQUEST_TIMEOUT, {"error": "the request body did not "
                            f"arrive within {limits.read_timeout_s:g} s (--read_timeout_s)"})
            except Exception as e:       # a bug or an exhausted resource: still an answer
                self.log_error("internal error: %r", e)
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR,
                            {"error": f"internal error: {type(e).__name__}: "
                                      f"{model_error_message(e)}"})
            if self.close_connection:
                self._drain()

        def _drain(self, seconds=1.0, most=1 << 20):
            """After an error reply on a connection whose body was not read: reads what
            the client still sends (up to ``most`` bytes or ``seconds``), so closing the
            socket does not reset the connection before the client reads the reply."""
            try:
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.2)
                deadline, total = time.monotonic() + seconds, 0
                while time.monotonic() < deadline and total < most:
                    chunk = self.connection.recv(65536)
                    if not chunk:
                        break
                    total += len(chunk)
            except OSError:
                pass

        def do_GET(self):  # noqa: N802 (http.server's naming)
            def status():
                match = self._route()
                version, _ = store.get(match["name"], match["version"])
                return {"model_version_status": [
                    {"version": str(version), "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}}]}
            self._answer(status)

        def _predict(self):
            # the body is read (or the connection closed) before any other check, so an
            # unread body is never taken for the next request
            keep_alive, self.close_connection = not self.close_connection, True
            length = content_length(self.headers, limits.max_body_bytes)
            data = self.rfile.read(length)
            if len(data) < length:
                raise bad_request(f"the body ended after {len(data)} of its {length} bytes")
            self.close_connection = not keep_alive
            match = self._route()
            if not match["verb"]:
                raise RequestError(HTTPStatus.NOT_FOUND, "only :predict is supported")
            try:
                body = json.loads(data or b"null")
            except ValueError as e:
                raise bad_request(f"JSON Parse error: {e}") from None
            if not isinstance(body, dict):
                raise bad_request("the request body must be a JSON object")
            return predict(store, match["name"], match["version"], body, limits)

        def do_POST(self):  # noqa: N802
            self._answer(self._predict)

        def log_message(self, *args):  # quiet
            pass

    server = _Server((host, port), Handler)
    server.store = store
    return server


def limits_from_flags() -> ServerLimits:
    f = flags.FLAGS
    return ServerLimits(max_batch=f.max_batch, max_body_bytes=int(f.max_body_mb * 2 ** 20),
                        read_timeout_s=f.read_timeout_s)


def main(argv):
    del argv
    f = flags.FLAGS
    server = make_server(f.export_base, f.host, f.port, limits_from_flags())
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
