"""Load test of the development server: ``python -m export.load_test``.

  python -m export.load_test --export_base=serving --model_name=rstg \\
      --requests=200 --malformed=0.33 --concurrency=16

Starts ``export.serve`` on 127.0.0.1 (a free port) for --export_base, asks one lone request
per clip for its answer, then sends --requests requests from --concurrency threads, a
--malformed share of them malformed (cycling through ``MALFORMED``: bad JSON, floats and
out-of-range values for uint8, wrong shapes, a bad Content-Length, a batch over the limit,
an unknown signature or model ...). Every good request must get the lone request's answer
exactly; every malformed one a 4xx with an error body; nothing may go unanswered within
--time_limit_s. Prints p50 / p95 latency per kind as markdown (and --output JSON); exit 1
when any request was answered wrongly or not at all.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import threading
import time

import numpy as np
from absl import flags

from export import serve
from rstg_tf import cli

def _instances(array) -> dict:
    return {"instances": np.asarray(array).tolist()}


# Each kind of request: (clip uint8 [T, H, W, C], max_batch) -> (path suffix after
# /v1/models/<name>, JSON body or raw bytes, extra headers). The malformed ones are cycled
# through in this order.
REQUESTS = {
    "good": lambda clip, _: ("", _instances(clip[None]), {}),
    "bad_json": lambda clip, _: ("", b"{not json", {}),
    "not_an_object": lambda clip, _: ("", [1, 2], {}),
    "float_values": lambda clip, _: ("", _instances(clip[None] + 0.5), {}),
    "out_of_range": lambda clip, _: ("", _instances(clip[None].astype(int) + 256), {}),
    "negative": lambda clip, _: ("", _instances(clip[None].astype(int) - 256), {}),
    "wrong_shape": lambda clip, _: ("", _instances(clip[None, :, ::2]), {}),
    "ragged": lambda clip, _: ("", {"instances": [clip.tolist(), clip[:1].tolist()]}, {}),
    "unknown_signature": lambda clip, _: (
        "", {"signature_name": "nope", **_instances(clip[None])}, {}),
    "unknown_model": lambda clip, _: ("-nope", _instances(clip[None]), {}),
    "bad_content_length": lambda clip, _: ("", _instances(clip[None]),
                                           {"Content-Length": "abc"}),
    "over_max_batch": lambda clip, max_batch: (
        "", _instances(np.zeros((max_batch + 1, 1), int)), {}),
    "empty_instances": lambda clip, _: ("", {"instances": []}, {}),
}
MALFORMED = tuple(kind for kind in REQUESTS if kind != "good")


def _request(kind: str, clip: np.ndarray, max_batch: int):
    """(path suffix, body bytes, headers) of one request of ``kind`` ('good' or malformed)."""
    if kind not in REQUESTS:
        raise ValueError(f"unknown request kind {kind!r}; known: {', '.join(REQUESTS)}")
    suffix, body, headers = REQUESTS[kind](clip, max_batch)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return suffix + ":predict", data, headers


def send(address, path: str, data: bytes, headers=None, timeout: float = 60.0):
    """POST ``data`` to ``path``; (status, parsed JSON body, seconds). Headers given here
    replace the computed ones (a bad Content-Length is sent as is)."""
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    start = time.perf_counter()
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data)),
                   "Connection": "close", **(headers or {})}
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders(data)
        response = connection.getresponse()
        payload = response.read()
        seconds = time.perf_counter() - start
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = {"unparsed": payload[:200].decode(errors="replace")}
        return response.status, parsed, seconds
    finally:
        connection.close()


def _percentiles(seconds):
    if not seconds:
        return {"count": 0}
    ms = np.asarray(seconds) * 1e3
    return {"count": len(ms), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max())}


def run_load(export_base: str, model_name: str = "rstg", requests: int = 200,
             malformed: float = 1 / 3, concurrency: int = 16, clips: int = 4,
             time_limit_s: float = 300.0, limits=None, seed: int = 0) -> dict:
    """Starts the development server on 127.0.0.1 and loads it (see the module docstring).

    Returns a dict: per-kind latency percentiles, ``failures`` (one line per request that
    was answered wrongly or not at all; empty when the server passed) and the settings.
    """
    if requests < 1 or not 0 <= malformed <= 1 or concurrency < 1 or clips < 1:
        raise ValueError("requests, concurrency and clips must be positive and malformed "
                         f"in [0, 1]; got {requests}, {concurrency}, {clips}, {malformed}")
    limits = limits or serve.ServerLimits()
    httpd = serve.make_server(export_base, "127.0.0.1", 0, limits)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    address = httpd.server_address[:2]
    base = f"/v1/models/{model_name}"
    try:
        spec = httpd.store.input_spec(model_name, "serving_default", "video")
        shape = [1 if d is None else d for d in spec.shape.as_list()[1:]]
        rng = np.random.default_rng(seed)
        pool = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(clips)]
        expected = []
        for clip in pool:                         # one lone request per clip: the answer
            suffix, data, headers = _request("good", clip, limits.max_batch)
            status, body, _ = send(address, base + suffix, data, headers)
            if status != 200:
                raise ValueError(f"a lone good request got {status}: {body}")
            expected.append(body["predictions"][0])
        bad_every = round(1 / malformed) if malformed else 0
        plan = []
        for i in range(requests):
            bad = bad_every and i % bad_every == bad_every - 1
            kind = MALFORMED[(i // max(bad_every, 1)) % len(MALFORMED)] if bad else "good"
            plan.append((i, kind))
        deadline = time.monotonic() + time_limit_s

        def one(item):
            i, kind = item
            clip_index = i % clips
            suffix, data, headers = _request(kind, pool[clip_index], limits.max_batch)
            timeout = max(deadline - time.monotonic(), 0.1)
            try:
                status, body, seconds = send(address, base + suffix, data, headers, timeout)
            except OSError as e:                  # refused, reset, timed out
                return kind, None, f"request {i} ({kind}): no answer: {e!r}"
            if kind == "good":
                ok = status == 200 and body.get("predictions", [None])[0] == \
                    expected[clip_index]
            else:
                ok = 400 <= status < 500 and isinstance(body.get("error"), str)
            problem = None if ok else f"request {i} ({kind}): {status} {str(body)[:200]}"
            return kind, seconds, problem

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as executor:
            answers = list(executor.map(one, plan))
        wall = time.perf_counter() - start
    finally:
        httpd.shutdown()
        httpd.server_close()
    good = [s for k, s, p in answers if k == "good" and s is not None]
    bad = [s for k, s, p in answers if k != "good" and s is not None]
    return {"requests": requests, "malformed": sum(k != "good" for _, k in plan),
            "concurrency": concurrency, "wall_s": wall, "requests_per_s": requests / wall,
            "good": _percentiles(good), "malformed_answers": _percentiles(bad),
            "failures": [p for _, _, p in answers if p], "answers": expected}


def markdown(result: dict) -> str:
    rows = ["| requests | answered | p50 ms | p95 ms | max ms |", "| --- | --- | --- | --- | --- |"]
    for name, key in (("good", "good"), ("malformed", "malformed_answers")):
        r = result[key]
        if r["count"]:
            rows.append(f"| {name} | {r['count']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                        f"{r['max_ms']:.1f} |")
    rows.append(f"\n{result['requests']} requests ({result['malformed']} malformed) from "
                f"{result['concurrency']} threads in {result['wall_s']:.1f} s "
                f"({result['requests_per_s']:.1f} requests/s); "
                f"{len(result['failures'])} answered wrongly or not at all.")
    return "\n".join(rows)


def main(argv):
    del argv
    f = flags.FLAGS
    result = run_load(f.export_base, f.model_name, f.requests, f.malformed, f.concurrency,
                      time_limit_s=f.time_limit_s,
                      limits=serve.limits_from_flags())
    print(markdown(result))
    for line in result["failures"][:20]:
        print(line)
    if f.output:
        from rstg_tf.data.atomic import atomic_write_text

        atomic_write_text(f.output, json.dumps(result, indent=1) + "\n")
    if result["failures"]:
        raise SystemExit(1)


def _define_flags():
    # defined only when run as a program: tests import this module beside others that
    # define flags of the same names (--model_name, --output)
    flags.DEFINE_string("model_name", "rstg", "Served model name.")
    flags.DEFINE_integer("requests", 200, "Requests in all.", lower_bound=1)
    flags.DEFINE_float("malformed", 1 / 3, "Share of malformed requests.", lower_bound=0,
                       upper_bound=1)
    flags.DEFINE_integer("concurrency", 16, "Client threads.", lower_bound=1)
    flags.DEFINE_float("time_limit_s", 300.0, "Every request must be answered within this.",
                       lower_bound=1)
    flags.DEFINE_string("output", None, "Also write the figures as JSON here.")


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
