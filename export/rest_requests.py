"""What the development server checks in a REST request before the model sees it
(``export.serve``): the declared body size, the signature's inputs in TF Serving's row
(``instances``) or column (``inputs``) format, and each value against the signature's
dtype, shape and the server's batch limit; and the one line of a model-side TF error that
says what is wrong. Failures are ``RequestError``s carrying their HTTP status."""

import dataclasses
import re
from http import HTTPStatus


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def bad_request(message: str) -> RequestError:
    return RequestError(HTTPStatus.BAD_REQUEST, message)


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server (beyond a limit: 400, or 413 for the body).

    Attributes:
      max_batch: the most clips (frames, streams) in one request; also the largest
        ``stream_init`` batch.
      max_body_bytes: the largest request body (its declared Content-Length).
      read_timeout_s: how long a connection may stay silent (a body sent too slowly, an
        idle keep-alive connection) before the server gives up on it.
    """
    max_batch: int = 64
    max_body_bytes: int = 32 << 20
    read_timeout_s: float = 30.0

    def __post_init__(self):
        for name in ("max_batch", "max_body_bytes", "read_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerLimits.{name} must be positive, got "
                                 f"{getattr(self, name)!r}")


def _has_bool(value) -> bool:
    """Whether a JSON value (nested lists) holds a boolean (NumPy would read True as 1)."""
    if isinstance(value, list):
        if value and not isinstance(value[0], list):
            return any(v is True or v is False for v in value)
        return any(_has_bool(v) for v in value)
    return value is True or value is False


def to_array(value, spec, name: str, max_batch: int):
    """A request's JSON value -> a NumPy array of the signature's dtype, refusing what a
    cast would change (floats or booleans for integers, values out of the dtype's range),
    ragged lists, a batch over ``max_batch`` and shapes the signature does not take."""
    import numpy as np

    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError) as e:
        raise bad_request(f"input '{name}' is not a rectangular array of numbers: {e}") from None
    kinds = {"i": "iu", "u": "iu", "f": "iuf", "b": "b"}.get(dtype.kind, "USO")
    if array.dtype.kind not in kinds or (dtype.kind != "b" and _has_bool(value)):
        found = {"f": "a non-integer number", "U": "a string",
                 "O": "values that are not numbers of one kind (or integers over 64 bits)"
                 }.get(array.dtype.kind, "a boolean")
        raise bad_request(f"input '{name}' takes {spec.dtype.name} values; the request has {found}")
    if dtype.kind in "iu" and array.size:
        info, low, high = np.iinfo(dtype), array.min(), array.max()
        if low < info.min or high > info.max:
            raise bad_request(f"input '{name}' takes {spec.dtype.name} values in [{info.min}, "
                              f"{info.max}]; the request has values in [{low}, {high}]")
    batched = spec.shape.rank and spec.shape[0] is None and array.ndim >= 1
    if batched and array.shape[0] > max_batch:
        raise bad_request(f"input '{name}' has a batch of {array.shape[0]}; this server takes at "
                          f"most {max_batch} (--max_batch)")
    if name == "batch" and array.ndim == 0 and dtype.kind in "iu" and array > max_batch:
        raise bad_request(f"'batch' asks for {int(array)} streams; this server takes at most "
                          f"{max_batch} (--max_batch)")
    if not spec.shape.is_compatible_with(array.shape):
        raise bad_request(f"input '{name}' has shape {list(array.shape)}; the signature expects "
                          f"{spec.shape.as_list()} (None: any size)")
    return array.astype(dtype)


_NOISE = re.compile(r"\[\[.*?\]\]|\[Op:[^\]]*\]")
_ASSERTION = re.compile(r"assertion failed: \[(?P<message>.*?)\] \[Condition [^\]]*\]"
                        r"(?P<data>.*)")


def model_error_message(error) -> str:
    """The line of a TF runtime error that says what is wrong: an assertion's own message
    with the values it saw, or the op's complaint ("Incompatible shapes: ..."), without
    TF's node names and call-site trace."""
    text = getattr(error, "message", None) or str(error)
    lines = [_NOISE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(
        ("Graph execution error", "Detected at node", "<stack traces", "File \""))]
    if not lines:
        return type(error).__name__
    line = lines[-1]
    match = _ASSERTION.search(line)
    if match:
        message = match["message"].replace("\\'", "'").strip().rstrip(".")
        values = re.findall(r"= \] \[([^\]]*)\]", match["data"])
        return f"{message} (got {', '.join(values)})" if values else message
    return line


def content_length(headers, limit: int) -> int:
    """The declared body size, refused (400) when missing, not a number or negative, and
    (413) over ``limit``."""
    raw = headers.get("Content-Length")
    if raw is None:
        raise bad_request("the request has no Content-Length; send the JSON body with its length")
    try:
        length = int(raw)
    except ValueError:
        raise bad_request(f"Content-Length {raw!r} is not a number of bytes") from None
    if length < 0:
        raise bad_request(f"Content-Length {length} is negative")
    if length > limit:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"the request body of {length} bytes is over this server's limit "
                           f"of {limit} bytes (--max_body_mb)")
    return length


def request_inputs(body: dict, specs: dict, max_batch: int):
    """(row format?, {input: NumPy array}) of a predict body for a signature whose inputs
    are ``specs`` ({name: tf.TensorSpec})."""
    if ("instances" in body) == ("inputs" in body):
        raise bad_request("Missing 'inputs' or 'instances' key (exactly one of them)")
    row_format = "instances" in body
    if row_format:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise bad_request("'instances' must be a non-empty list")
        if len(specs) == 1:
            inputs = {next(iter(specs)): instances}
        elif all(isinstance(i, dict) for i in instances):
            inputs = {k: [i.get(k) for i in instances] for k in specs}
        else:
            raise bad_request(f"instances must be objects naming the inputs {sorted(specs)}")
    else:
        inputs = body["inputs"]
        if len(specs) == 1 and not isinstance(inputs, dict):
            inputs = {next(iter(specs)): inputs}
        if not isinstance(inputs, dict):
            raise bad_request("'inputs' must be an object")
    missing = sorted(set(specs) - set(inputs))
    extra = sorted(set(inputs) - set(specs))
    if missing or extra:
        raise bad_request(f"inputs must be {sorted(specs)}; missing {missing}, unexpected "
                          f"{extra}")
    return row_format, {k: to_array(inputs[k], specs[k], k, max_batch) for k in specs}
