"""The client side of the benchmark server (``hwcompress serve``): the ``remote`` latency source.

It lives in :mod:`hwcompress.measure` beside the other latency sources; the server
(:mod:`hwcompress.serve`) imports the protocol from here, never the other way round.

A profile with ``latency: {source: remote, url: http://board:8765, token_env: HWCOMPRESS_TOKEN}``
sends every model to ``hwcompress serve`` on the board. Network failures, timeouts and a busy
server (503) are retried with exponential backoff; after ``latency.retries`` retries the
measurement fails with a :class:`~hwcompress.errors.LatencyError` that says why, so a search
records the candidate as failed and goes on instead of hanging. A bad model (400) or a wrong
token (401) is not retried.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from hwcompress.errors import LatencyError, ModelError

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile
    from hwcompress.measure.result import LatencyResult

__all__ = ["API", "RemoteClient", "client_for", "measure_remote"]

#: The path prefix of the benchmark server's protocol (shared with :mod:`hwcompress.serve`).
API = "/v1"

#: Statuses worth retrying: the server is busy or briefly broken.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RemoteClient:
    """Talks to one benchmark server.

    Args:
        url: The server, e.g. ``http://192.168.1.20:8765``.
        token: The bearer token.
        timeout_s: Seconds one request may take.
        retries: Retries after a retryable failure.
        backoff_s: First wait between tries; doubled each time (capped at 30 s).
        sleep: The waiting function (tests pass a fast one).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep

    def _request(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(min(30.0, self.backoff_s * 2 ** (attempt - 1)))
            req = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as err:
                message = _error_message(err)
                if err.code == 401:
                    raise LatencyError(
                        f"the benchmark server at {self.url} refused the token ({message}); "
                        "set the profile's token_env variable to the token the server was "
                        "started with"
                    ) from None
                if err.code in (400, 413):
                    raise ModelError(f"the benchmark server refused the model: {message}") from None
                if err.code not in _RETRY_STATUSES:
                    raise LatencyError(
                        f"the benchmark server at {self.url} answered {err.code}: {message}"
                    ) from None
                reason = f"HTTP {err.code}: {message}"
            except OSError as err:  # URLError, timeouts, refused or reset connections
                reason = str(getattr(err, "reason", err))
            except json.JSONDecodeError:
                reason = "the answer was not JSON (is this a hwcompress benchmark server?)"
        raise LatencyError(
            f"the benchmark server at {self.url} failed {self.retries + 1} tries ({reason}); "
            "check that 'hwcompress serve' runs on the board and that latency.url in the "
            "profile points at it"
        )

    def info(self) -> dict[str, Any]:
        """The server's onnxruntime version, providers and cores."""
        return self._request("GET", f"{API}/info")

    def measure(
        self,
        onnx_path: str | Path,
        *,
        runs: int,
        warmup: int,
        min_time_s: float,
        threads: int,
        providers: tuple[str, ...],
    ) -> LatencyResult:
        """Sends a model and returns its latency on the board.

        Raises:
            ModelError: If the file cannot be read or the server refuses the model.
            LatencyError: If the server cannot be reached after the retries.
        """
        from hwcompress.measure.result import LatencyResult

        try:
            body = Path(onnx_path).read_bytes()
        except OSError as err:
            raise ModelError(f"{onnx_path}: cannot read the model ({err})") from None
        query = urlencode(
            {
                "runs": runs,
                "warmup": warmup,
                "min_time_s": min_time_s,
                "threads": threads,
                "providers": ",".join(providers),
            }
        )
        answer = self._request("POST", f"{API}/measure?{query}", body)
        try:
            result = LatencyResult.from_dict(answer["latency"])
        except (KeyError, TypeError, ValueError):
            raise LatencyError(
                f"the benchmark server at {self.url} sent an answer without latency"
            ) from None
        return result.with_notes(f"measured by the benchmark server at {self.url}")


def _error_message(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(err.read())["error"])
    except Exception:
        return err.reason if isinstance(err.reason, str) else str(err)


def client_for(profile: DeviceProfile, **kwargs: Any) -> RemoteClient:
    """A client for the profile's ``latency.url`` with the token from ``latency.token_env``.

    Raises:
        LatencyError: If the profile names no server or the token variable is unset.
    """
    spec = profile.latency
    if not spec.url:
        raise LatencyError(f"profile '{profile.name}' names no benchmark server; set latency.url")
    token = os.environ.get(spec.token_env, "")
    if not token:
        raise LatencyError(
            f"${spec.token_env} is not set; export it with the token the benchmark server at "
            f"{spec.url} was started with"
        )
    return RemoteClient(spec.url, token, timeout_s=spec.timeout_s, retries=spec.retries, **kwargs)


def measure_remote(
    onnx_path: str | Path,
    profile: DeviceProfile,
    *,
    runs: int | None = None,
    warmup: int | None = None,
    min_time_s: float | None = None,
) -> LatencyResult:
    """Measures ``onnx_path`` on the board named by the profile's ``latency.url``.

    Raises:
        ModelError: If the server refuses the model.
        LatencyError: If the server cannot be reached, or refuses the token.
    """
    spec = profile.latency
    return client_for(profile).measure(
        onnx_path,
        runs=spec.runs if runs is None else runs,
        warmup=spec.warmup if warmup is None else warmup,
        min_time_s=spec.min_time_s if min_time_s is None else min_time_s,
        threads=profile.runtime.threads,
        providers=profile.runtime.providers,
    )
