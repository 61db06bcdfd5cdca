"""The kernel side of a hidden check's call: plain data in, the student's function, plain data out.

The hidden checks run in the trusted grading process (:mod:`autograder.kernel.remote`). When a
check calls a student function, the trusted side sends the kernel an ``execute_request`` whose
code is one call of :func:`serve` with a JSON request. :func:`serve` looks the function up in the
notebook's namespace, decodes the arguments, calls it, and publishes the response as one
``display_data`` message of type :data:`MIME`:

- the returned value, the arguments as they are after the call (a function may write into
  ``bn_param``) and which arrays of a dict argument it changed in place rather than stored anew
  (``kept``), what the function printed and the warnings it raised, and which of the notebook
  functions named in the request's ``watch`` it called (``called``: a check's error carried
  forward, autograder/checks/carried.py); or
- the exception it raised (type, builtin base classes, message, line); or
- a refusal, when the value is not plain data ("batchnorm_forward returned a MyArray; return a
  numpy array").

**Plain data** (:func:`encode` / :func:`decode`): ``None``, ``bool``, ``int``, ``float``,
``complex``, ``str``, numeric numpy scalars and ndarrays of exactly type ``numpy.ndarray`` (dtype
and shape kept; no subclasses, masked arrays, object or string arrays), and tuples, lists and
dicts with string keys of those, nested at most :data:`MAX_DEPTH` deep. Nothing else crosses.

This module is self-contained (standard library and numpy only): the sandbox mounts this one file
into the kernel, without the rest of ``autograder/``. The trusted side imports the same file for
:func:`encode` and :func:`decode`, and treats everything the kernel sends as untrusted input: it
is decoded with the same limits and never executed. A kernel that forges a response gains
nothing a function returning those values would not have.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
import traceback
import warnings
from typing import Any

import numpy as np

#: The mime type of a response in a ``display_data`` message.
MIME = "application/vnd.bn-grader.response+json"
#: Nesting depth of plain data (a tuple in a dict in a list is depth 3).
MAX_DEPTH = 16
#: Values (containers and leaves) in one message.
MAX_ITEMS = 100_000
#: Bytes of array data in one message.
MAX_BYTES = 64 * 1024**2
#: Characters kept of what a function prints, and of an exception's message.
MAX_TEXT = 2_000
_KINDS = "biufc"  # numpy dtype kinds that are numbers (bool, int, uint, float, complex)


class NotPlainData(TypeError):
    """A value that may not cross between the kernel and the grader; the message says why.

    ``value`` is the offending object, when there is one.
    """

    def __init__(self, message: str, value: Any = None):
        super().__init__(message)
        self.value = value


def _type_name(value: Any) -> str:
    return type(value).__name__


def encode(value: Any) -> Any:
    """``value`` as JSON-ready plain data (see the module docstring).

    Raises
    ------
    NotPlainData
        For anything that is not plain data, deeper than :data:`MAX_DEPTH`, or larger than
        :data:`MAX_ITEMS` values or :data:`MAX_BYTES` of array data.
    """
    budget = {"items": MAX_ITEMS, "bytes": MAX_BYTES}
    return _encode(value, 0, budget)


def _encode(value: Any, depth: int, budget: dict) -> Any:
    if depth > MAX_DEPTH:
        raise NotPlainData(f"a value nested more than {MAX_DEPTH} levels deep")
    budget["items"] -= 1
    if budget["items"] < 0:
        raise NotPlainData(f"more than {MAX_ITEMS} values")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        if kind is str and len(value) > 1_000_000:
            raise NotPlainData("a string longer than 1,000,000 characters")
        return value
    if kind is int:
        if abs(value) > 2**256:
            raise NotPlainData("an integer with more than 256 bits")
        return {"$i": str(value)}
    if kind is float:
        return {"$f": value.hex()}
    if kind is complex:
        return {"$c": [value.real.hex(), value.imag.hex()]}
    if kind is np.ndarray or isinstance(value, np.generic) and kind.__module__ == "numpy":
        arr = np.asarray(value)
        if arr.dtype.kind not in _KINDS or arr.dtype.fields is not None:
            raise NotPlainData(f"an array of dtype {arr.dtype}, not of numbers", value)
        budget["bytes"] -= arr.nbytes
        if budget["bytes"] < 0:
            raise NotPlainData(f"more than {MAX_BYTES} bytes of array data")
        data = base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")
        tag = "$nd" if kind is np.ndarray else "$ns"
        return {tag: [arr.dtype.str, list(arr.shape), data]}
    if kind is tuple:
        return {"$t": [_encode(v, depth + 1, budget) for v in value]}
    if kind is list:
        return [_encode(v, depth + 1, budget) for v in value]
    if kind is dict:
        items = []
        for key, v in value.items():
            if type(key) is not str:
                raise NotPlainData(f"a dict key of type {_type_name(key)}; use str keys")
            items.append([key, _encode(v, depth + 1, budget)])
        return {"$d": items}
    raise NotPlainData(f"a {_type_name(value)}", value)


def decode(data: Any) -> Any:
    """The plain value that :func:`encode` gave ``data`` for, checked again on the way in.

    Raises
    ------
    NotPlainData
        If ``data`` is not of the form :func:`encode` writes, or breaks its limits.
    """
    budget = {"items": MAX_ITEMS, "bytes": MAX_BYTES}
    return _decode(data, 0, budget)


def _decode(data: Any, depth: int, budget: dict) -> Any:
    if depth > MAX_DEPTH + 1:
        raise NotPlainData(f"a value nested more than {MAX_DEPTH} levels deep")
    budget["items"] -= 1
    if budget["items"] < 0:
        raise NotPlainData(f"more than {MAX_ITEMS} values")
    kind = type(data)
    if data is None or kind is bool or kind is str:
        return data
    if kind is list:
        return [_decode(v, depth + 1, budget) for v in data]
    if kind is not dict or len(data) != 1:
        raise NotPlainData(f"malformed plain data ({_type_name(data)})")
    (tag, body), = data.items()
    try:
        if tag == "$i":
            if type(body) is not str or len(body) > 80:
                raise NotPlainData("malformed integer")
            return int(body)
        if tag == "$f":
            return float.fromhex(body)
        if tag == "$c":
            return complex(float.fromhex(body[0]), float.fromhex(body[1]))
        if tag in ("$nd", "$ns"):
            return _decode_array(tag, body, budget)
        if tag == "$t":
            return tuple(_decode(v, depth + 1, budget) for v in body)
        if tag == "$d":
            out = {}
            for key, v in body:
                if type(key) is not str:
                    raise NotPlainData("a dict key that is not a str")
                out[key] = _decode(v, depth + 1, budget)
            return out
    except NotPlainData:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise NotPlainData(f"malformed {tag} value ({exc})") from None
    raise NotPlainData(f"unknown tag {tag!r}")


def _decode_array(tag: str, body: Any, budget: dict) -> Any:
    dtype_str, shape, data = body
    dtype = np.dtype(dtype_str)
    if dtype.kind not in _KINDS or dtype.fields is not None:
        raise NotPlainData(f"an array of dtype {dtype}, not of numbers")
    if type(shape) is not list or not all(type(n) is int and 0 <= n for n in shape):
        raise NotPlainData("malformed array shape")
    if len(shape) > 32:
        raise NotPlainData("an array with more than 32 dimensions")
    raw = base64.b64decode(data, validate=True)
    budget["bytes"] -= len(raw)
    if budget["bytes"] < 0:
        raise NotPlainData(f"more than {MAX_BYTES} bytes of array data")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize != len(raw):
        raise NotPlainData("array data does not match its shape and dtype")
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return arr if tag == "$nd" else arr[()]


# ----------------------------------------------------------------------------- the kernel side
def _function_from_source(spec: list) -> Any:
    """A function the check sent as source (e.g. the ``f`` of ``numerical_gradient``)."""
    source, name, constants = spec
    namespace: dict[str, Any] = {"np": np, "numpy": np, **decode(constants)}
    exec(compile(source, f"<check function {name}>", "exec"), namespace)  # noqa: S102
    return namespace[name]


def _argument(value: Any, namespace: dict) -> Any:
    if type(value) is dict and len(value) == 1:
        (tag, body), = value.items()
        if tag == "$src":
            return _function_from_source(body)
        if tag == "$fn":
            return namespace[body]
    return decode(value)


def _error(exc: BaseException) -> dict:
    bases = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"]
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and frames[-1].line:
        where = f"line {frames[-1].lineno}: {frames[-1].line!r}"
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a student's __str__ may raise anything
        message = f"<{_type_name(exc)} whose message could not be read>"
    return {"type": _type_name(exc)[:100], "bases": bases, "message": message[:MAX_TEXT],
            "where": where[:MAX_TEXT]}


def _call(request: dict, namespace: dict) -> dict:
    if request.get("probe"):  # is there a function of this name? (a check's companion lookup)
        return {"value": callable(namespace.get(request["args"][0]))}
    name = request["fn"]
    if name not in namespace:
        return {"missing": name}
    fn = namespace[name]
    if not callable(fn):
        return {"refused": f"{name} is a {_type_name(fn)}, not a function"}
    args = [_argument(a, namespace) for a in request["args"]]
    arrays = [{k: v for k, v in a.items() if type(v) is np.ndarray} if type(a) is dict else {}
              for a in args]  # to tell an array changed in place from one stored anew
    out, err = io.StringIO(), io.StringIO()
    called: set[str] = set()
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn"):
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                    _watching(namespace, request.get("watch"), name, called):
                value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt and SystemExit too
            return {"error": _error(exc), "stdout": out.getvalue()[:MAX_TEXT],
                    "stderr": err.getvalue()[:MAX_TEXT], "called": sorted(called)}
    notes = sorted({f"{w.category.__name__}: {w.message}"[:MAX_TEXT] for w in caught})[:20]
    response: dict[str, Any] = {"stdout": out.getvalue()[:MAX_TEXT],
                                "stderr": err.getvalue()[:MAX_TEXT], "warnings": notes,
                                "called": sorted(called)}
    try:
        response["value"] = encode(value)
    except NotPlainData as exc:
        hint = "; return a numpy array" if hasattr(exc.value, "__array__") else ""
        return {"refused": f"{name} returned {exc}{hint} (plain numbers, numpy arrays, and "
                           "tuples, lists and dicts of those)"}
    after = []
    for now in args:  # what the call did to its arguments (bn_param, arrays written in place)
        try:
            after.append(encode(now) if type(now) in (np.ndarray, dict, list) else None)
        except NotPlainData as exc:
            return {"refused": f"{name} put {exc} into one of its arguments"}
    response["after"] = after
    response["kept"] = [sorted(k for k, v in before.items() if a.get(k) is v)
                        if type(a) is dict else [] for a, before in zip(args, arrays, strict=True)]
    return response


@contextlib.contextmanager
def _watching(namespace: dict, watch: Any, caller: str, called: set):
    """For the call: the notebook functions named in ``watch`` (the graded function's callees)
    are wrapped so that ``called`` collects those that ran; restored after."""
    saved = {}
    for name in watch if type(watch) is list else []:
        original = namespace.get(name) if type(name) is str and name != caller else None
        if callable(original):
            saved[name] = original

            def spy(*a, _original=original, _name=name, **k):
                called.add(_name)
                return _original(*a, **k)

            namespace[name] = spy
    try:
        yield
    finally:
        namespace.update(saved)


def serve(request_json: str) -> None:
    """Answer one request of the trusted grader (see the module docstring); never raises."""
    from IPython.display import display

    request: Any = None
    try:
        request = json.loads(request_json)
        namespace = sys.modules["__main__"].__dict__
        try:
            from IPython import get_ipython

            namespace = get_ipython().user_ns
        except Exception:  # noqa: BLE001 - outside IPython (tests): the main module
            pass
        response = _call(request, namespace)
    except RecursionError:
        response = {"refused": "a value nested too deeply"}
    except Exception as exc:  # noqa: BLE001 - a malformed request must still get an answer
        response = {"refused": f"the request could not be served ({_type_name(exc)}: {exc})"}
    response["id"] = request.get("id") if isinstance(request, dict) else None
    guard = sys.modules.get("autograder.kernel.guard")
    if guard is not None and guard.is_installed():
        response["guard"] = guard.take_flags()
    display({MIME: json.dumps(response)}, raw=True)
