"""The benchmark server: ``hwcompress serve`` on the board measures ONNX models it is sent.

One HTTP endpoint does the work::

    POST /v1/measure?runs=50&warmup=10&min_time_s=0.5&threads=4&providers=CPUExecutionProvider
    Authorization: Bearer <token>
    Content-Type: application/octet-stream
    <the .onnx file's bytes>

and answers ``{"latency": {...}}`` (:meth:`~hwcompress.measure.result.LatencyResult.to_dict`:
median, p90, runs, provider, threads and the kernels the optimised graph ran). ``GET /v1/info``
tells the onnxruntime version, its providers and the cores. Errors answer
``{"error": "..."}`` with 400 (bad model or option), 401 (missing or wrong token), 411/413
(no length / too large), 503 (queue full; ``Retry-After`` says when to try again) or 500.

Every model is checked before onnxruntime sees it: its size, that it parses, that no tensor
points at external data (a path on the board), and ``onnx.checker``. Measurements run one at a
time under a lock, so two clients never disturb each other's timings; at most ``max_queue``
requests wait behind the one running, the rest are turned away at once.
"""

from __future__ import annotations

import hmac
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from hwcompress.errors import HwCompressError, ModelError
from hwcompress.hardware.sections import SourceName
from hwcompress.measure.remote import API

__all__ = ["BenchServer", "ServeConfig", "check_model_bytes", "serve_forever"]


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Settings of the benchmark server.

    Attributes:
        token: The bearer token every request must carry.
        host: Address to bind; loopback unless the board must be reached from the network.
        port: TCP port (0 picks a free one).
        max_bytes: Largest model accepted.
        max_queue: Requests that may wait behind the one being measured.
        max_runs: Cap on the timed runs of one measurement.
        max_time_s: Cap on the ``min_time_s`` a client may ask for.
    """

    token: str
    host: str = "127.0.0.1"
    port: int = 8765
    max_bytes: int = 64 * 2**20
    max_queue: int = 4
    max_runs: int = 5000
    max_time_s: float = 30.0

    def __post_init__(self) -> None:
        if len(self.token) < 8:
            raise HwCompressError(
                "the server's token must be at least 8 characters; set a long random secret, "
                "e.g. export HWCOMPRESS_TOKEN=$(python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        if self.max_bytes < 1 or self.max_queue < 0:
            raise HwCompressError("max_bytes must be ≥ 1 and max_queue ≥ 0")


def _tensors(graph: Any) -> Any:
    """Every tensor of a graph: initializers, constant attributes, and subgraphs'."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def check_model_bytes(data: bytes, max_bytes: int) -> Any:
    """Validates a model sent to the server.

    Args:
        data: The file's bytes.
        max_bytes: The size limit.

    Returns:
        The parsed ``onnx.ModelProto``.

    Raises:
        ModelError: With what is wrong and what to send instead.
    """
    import onnx

    if len(data) > max_bytes:
        raise ModelError(f"the model is {len(data)} bytes; this server accepts {max_bytes} at most")
    if not data:
        raise ModelError("the request has no body; send the .onnx file's bytes")
    try:
        model = onnx.load_model_from_string(data)
    except Exception:
        raise ModelError("the body is not an ONNX model; send the bytes of a .onnx file") from None
    if not model.graph.node:
        raise ModelError("the body is not an ONNX model with a graph; send a .onnx file")
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelError(
                f"tensor '{tensor.name}' points at external data; this server only measures "
                "self-contained models (export with the weights inside the .onnx file)"
            )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "invalid"
        raise ModelError(f"onnx.checker rejects the model: {first}") from None
    return model


class _Refused(Exception):
    """An HTTP error answer: status, message, extra headers."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _options(query: dict[str, list[str]], config: ServeConfig) -> dict[str, Any]:
    """Session settings from the query string, validated and capped."""
    known = {"runs", "warmup", "min_time_s", "threads", "providers"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise _Refused(
            HTTPStatus.BAD_REQUEST,
            f"unknown option {unknown[0]!r}; use {', '.join(sorted(known))}",
        )

    def one(name: str, kind: type, default: Any, low: float) -> Any:
        if name not in query:
            return default
        try:
            value = kind(query[name][-1])
        except ValueError:
            raise _Refused(HTTPStatus.BAD_REQUEST, f"{name} must be a {kind.__name__}") from None
        if value < low:
            raise _Refused(HTTPStatus.BAD_REQUEST, f"{name} must be at least {low:g}")
        return value

    providers = tuple(
        p for p in query.get("providers", ["CPUExecutionProvider"])[-1].split(",") if p
    ) or ("CPUExecutionProvider",)
    return {
        "runs": min(one("runs", int, 50, 1), config.max_runs),
        "warmup": min(one("warmup", int, 10, 0), config.max_runs),
        "min_time_s": min(one("min_time_s", float, 0.5, 0), config.max_time_s),
        "threads": one("threads", int, 1, 1),
        "providers": providers,
        "max_runs": config.max_runs,
    }


class BenchServer(ThreadingHTTPServer):
    """The HTTP server; :meth:`serve_forever` (or a thread running it) serves requests.

    Args:
        config: Settings.
        log: Receives one line per request (``None``: silent).
    """

    daemon_threads = True

    def __init__(self, config: ServeConfig, log: Any = None) -> None:
        self.config = config
        self.log = log
        self.measure_lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(config.max_queue + 1)
        self.measured = 0
        super().__init__((config.host, config.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is one log line, not a traceback."""
        import sys

        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):
            if self.log is not None:
                self.log(f"{client_address[0]} connection lost ({type(err).__name__})")
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The address clients use."""
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: BenchServer
    timeout = 60  # seconds a slow client may take to send its request
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.client_address[0]} {format % args}")

    def _send(self, status: HTTPStatus, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _authorise(self) -> None:
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.config.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise _Refused(
                HTTPStatus.UNAUTHORIZED,
                "missing or wrong bearer token; send 'Authorization: Bearer <token>' with the "
                "token the server was started with",
                {"WWW-Authenticate": "Bearer"},
            )

    def _handle(self, fn: Any) -> None:
        try:
            self._authorise()
            status, body = fn()
            self._send(status, body, {})
        except _Refused as err:
            if err.status >= 400 and self.command == "POST":
                self.close_connection = True  # the body may not have been read
            self._send(err.status, {"error": err.message}, err.headers)

    def do_GET(self) -> None:
        self._handle(self._info)

    def do_POST(self) -> None:
        self._handle(self._measure)

    def _info(self) -> tuple[HTTPStatus, dict[str, Any]]:
        import onnxruntime as ort

        from hwcompress import __version__

        if urlparse(self.path).path != f"{API}/info":
            raise _Refused(HTTPStatus.NOT_FOUND, f"no such endpoint; use GET {API}/info")
        return HTTPStatus.OK, {
            "hwcompress": __version__,
            "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(),
            "cores": os.cpu_count(),
            "max_bytes": self.server.config.max_bytes,
            "measured": self.server.measured,
            "busy": self.server.measure_lock.locked(),
        }

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise _Refused(
                HTTPStatus.LENGTH_REQUIRED, "send the model with a Content-Length header"
            )
        try:
            n = int(length.strip()) if length.strip().isdigit() else -1
        except ValueError:
            n = -1
        if n < 0:
            raise _Refused(
                HTTPStatus.BAD_REQUEST, "Content-Length must be a whole number of bytes (≥ 0)"
            )
        limit = self.server.config.max_bytes
        if n > limit:
            raise _Refused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the model is {n} bytes; this server accepts {limit} at most "
                "(start it with a larger --max-mb)",
            )
        data = self.rfile.read(n)
        if len(data) < n:
            raise _Refused(
                HTTPStatus.BAD_REQUEST,
                f"the body ended after {len(data)} of the {n} bytes Content-Length announced",
            )
        return data

    def _measure(self) -> tuple[HTTPStatus, dict[str, Any]]:
        from hwcompress.measure.latency import measure_onnx

        url = urlparse(self.path)
        if url.path != f"{API}/measure":
            raise _Refused(HTTPStatus.NOT_FOUND, f"no such endpoint; use POST {API}/measure")
        options = _options(parse_qs(url.query), self.server.config)
        data = self._body()
        if not self.server.slots.acquire(blocking=False):
            raise _Refused(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "the server's queue is full; try again shortly",
                {"Retry-After": "1"},
            )
        try:
            try:
                check_model_bytes(data, self.server.config.max_bytes)
            except ModelError as err:
                raise _Refused(HTTPStatus.BAD_REQUEST, str(err)) from None
            with tempfile.TemporaryDirectory(prefix="hwcompress-serve-") as tmp:
                path = Path(tmp) / "model.onnx"
                path.write_bytes(data)
                with self.server.measure_lock:
                    t0 = time.perf_counter()
                    try:
                        result = measure_onnx(path, source=SourceName.REMOTE, **options)
                    except ModelError as err:
                        raise _Refused(
                            HTTPStatus.BAD_REQUEST, str(err).replace(str(path), "model")
                        ) from None
                    except HwCompressError as err:
                        raise _Refused(
                            HTTPStatus.INTERNAL_SERVER_ERROR, str(err).replace(str(path), "model")
                        ) from None
                    self.server.measured += 1
                    wall = time.perf_counter() - t0
            return HTTPStatus.OK, {"latency": result.to_dict(), "wall_s": wall}
        finally:
            self.server.slots.release()


def serve_forever(config: ServeConfig, log: Any = print) -> None:
    """Runs the server until interrupted (Ctrl-C).

    Args:
        config: Settings.
        log: Receives the start-up line and one line per request.
    """
    server = BenchServer(config, log)
    log(f"hwcompress benchmark server on {server.url} (POST {API}/measure; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("stopped")
    finally:
        server.server_close()
