"""The benchmark server on loopback: auth, limits, bad models, concurrency, the remote source."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import onnx
import pytest

from hwcompress.errors import LatencyError, ModelError
from hwcompress.hardware import load_profile
from hwcompress.measure.sources import measure_latency
from hwcompress.serve import RemoteClient
from tests.serve.conftest import TOKEN


def _raw(server, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN):
    """One request without the client's retries; returns (status, headers, json body)."""
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def _client(server, **kwargs) -> RemoteClient:
    return RemoteClient(server.url, TOKEN, sleep=lambda s: time.sleep(min(s, 0.05)), **kwargs)


def _measure(client, path, **kwargs):
    opts = dict(runs=5, warmup=1, min_time_s=0.01, threads=1, providers=("CPUExecutionProvider",))
    return client.measure(path, **{**opts, **kwargs})


def test_measures_a_model_and_reports_kernels(server, tiny_onnx):
    result = _measure(_client(server), tiny_onnx)
    assert result.source == "remote" and result.runs >= 5
    assert 0 < result.min_ms <= result.median_ms
    assert result.float_compute_kernels, result.kernels  # the optimised graph's convs
    assert any("benchmark server" in n for n in result.notes)
    info = _client(server).info()
    assert info["measured"] == 1 and "CPUExecutionProvider" in info["providers"]


def test_requests_without_the_right_token_are_refused(server, tiny_onnx):
    body = Path(tiny_onnx).read_bytes()
    for token in (None, "wrong-token-123456"):
        status, headers, data = _raw(server, "POST", "/v1/measure", body, token=token)
        assert status == 401 and "token" in data["error"]
        assert headers.get("WWW-Authenticate") == "Bearer"
    assert _raw(server, "GET", "/v1/info", token=None)[0] == 401
    with pytest.raises(LatencyError, match="refused the token"):
        _measure(RemoteClient(server.url, "wrong-token-123456"), tiny_onnx)
    assert server.measured == 0


def test_size_limit(server_factory, tiny_onnx):
    server = server_factory(max_bytes=100)
    status, _, data = _raw(server, "POST", "/v1/measure", Path(tiny_onnx).read_bytes())
    assert status == 413 and "100 at most" in data["error"]
    with pytest.raises(ModelError, match="at most"):
        _measure(_client(server), tiny_onnx)


def _socket_request(server, head: str, body: bytes = b"", *, hang_up: bool = False) -> bytes:
    """A hand-written request on a raw socket; returns what the server answered."""
    import socket

    url = urlparse(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        if hang_up:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            return b""  # closed with a reset, mid-request
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("length", ["-1", "abc", "1e9", " "])
def test_a_bad_content_length_is_refused_before_reading(server, length):
    head = (
        f"POST /v1/measure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    answer = _socket_request(server, head, b"x" * 10)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    assert b"whole number of bytes" in answer
    assert server.measured == 0


def test_clients_that_hang_up_are_one_log_line(server_factory, tiny_onnx, capsys):
    lines: list[str] = []
    server = server_factory()
    server.log = lines.append
    body = Path(tiny_onnx).read_bytes()
    head = (
        f"POST /v1/measure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    short = _socket_request(server, head, body[: len(body) // 2])  # the body stops early
    assert short.startswith(b"HTTP/1.1 400") and b"body ended after" in short
    _socket_request(server, head, body[:10], hang_up=True)
    _socket_request(server, "GET /v1/info HTTP/1.1\r\n", hang_up=True)
    time.sleep(0.5)
    assert _raw(server, "GET", "/v1/info")[0] == 200  # still serving
    assert "Traceback" not in capsys.readouterr().err
    assert any("connection lost" in line for line in lines), lines
    assert server.measured == 0


def test_bad_models_are_refused_with_the_reason(server, tiny_onnx, tmp_path):
    status, _, data = _raw(server, "POST", "/v1/measure", b"not a model at all")
    assert status == 400 and "not an ONNX model" in data["error"]
    # a weight stored outside the file: a path on the board the client must not name
    model = onnx.load(str(tiny_onnx))
    from onnx.external_data_helper import convert_model_to_external_data

    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    onnx.save(model, str(tmp_path / "ext.onnx"))
    with pytest.raises(ModelError, match="external data"):
        _measure(_client(server), tmp_path / "ext.onnx")
    # a graph the checker rejects: a node reading a tensor nobody produces
    broken = onnx.load(str(tiny_onnx))
    broken.graph.node[0].input[0] = "nowhere"
    path = tmp_path / "broken.onnx"
    onnx.save(broken, str(path))
    with pytest.raises(ModelError, match=r"onnx\.checker"):
        _measure(_client(server), path)
    assert _raw(server, "POST", "/v1/measure?runs=zero", Path(tiny_onnx).read_bytes())[0] == 400
    assert _raw(server, "POST", "/v1/elsewhere", b"x")[0] == 404
    assert server.measured == 0


def test_concurrent_requests_are_measured_one_at_a_time(server, tiny_onnx):
    results, errors = [], []
    active, peak = [0], [0]
    lock = threading.Lock()
    real = server.measure_lock

    class Watch:  # counts measurements in flight under the server's lock
        def __enter__(self):
            real.acquire()
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])

        def __exit__(self, *exc):
            with lock:
                active[0] -= 1
            real.release()

        def locked(self):
            return real.locked()

    server.measure_lock = Watch()

    def work():
        try:
            results.append(_measure(_client(server), tiny_onnx, min_time_s=0.1))
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 4
    assert peak[0] == 1 and server.measured == 4


def test_a_full_queue_answers_503_and_the_client_retries(server_factory, tiny_onnx):
    server = server_factory(max_queue=0)
    body = Path(tiny_onnx).read_bytes()
    slow = threading.Thread(
        target=_raw, args=(server, "POST", "/v1/measure?runs=1&warmup=0&min_time_s=1.5", body)
    )
    slow.start()
    deadline = time.time() + 10
    while not server.measure_lock.locked() and time.time() < deadline:
        time.sleep(0.01)
    status, headers, data = _raw(server, "POST", "/v1/measure", body)
    assert status == 503 and headers.get("Retry-After") and "queue is full" in data["error"]
    # the client waits and tries again until the slot is free
    client = RemoteClient(server.url, TOKEN, retries=6, backoff_s=0.5)
    assert _measure(client, tiny_onnx).runs >= 5
    slow.join(30)


def test_unreachable_server_fails_with_a_reason_after_retries(tiny_onnx, remote_profile):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profile = load_profile(remote_profile(f"http://127.0.0.1:{port}", retries=2))
    t0 = time.perf_counter()
    with pytest.raises(LatencyError, match="failed 3 tries"):
        measure_latency(tiny_onnx, profile)
    assert time.perf_counter() - t0 < 10  # backoff 0.5 + 1.0 s, no hang


def test_missing_token_variable_is_a_clear_error(server, tiny_onnx, remote_profile, monkeypatch):
    profile = load_profile(remote_profile(server.url))
    monkeypatch.delenv("HWC_TEST_TOKEN")
    with pytest.raises(LatencyError, match=r"\$HWC_TEST_TOKEN is not set"):
        measure_latency(tiny_onnx, profile)


def test_bench_measures_on_the_server(server, tiny_onnx, remote_profile):
    from hwcompress.bench import bench

    report = bench(tiny_onnx, load_profile(remote_profile(server.url)))
    assert report.latency.source == "remote" and server.measured == 1


def test_search_with_the_remote_source_end_to_end(server, tiny_search, remote_profile):
    from hwcompress.search import SearchConfig, run_search

    config = SearchConfig(**{**tiny_search, "profile": remote_profile(server.url)})
    result = run_search(config)
    ok = [c for c in result.candidates if c.status == "ok"]
    assert ok and server.measured == len(ok) + 1  # every candidate and the teacher
    data = json.loads((Path(config.out) / "results.json").read_text())
    assert all(c["metrics"]["latency_ms"] > 0 for c in data["candidates"] if c["status"] == "ok")


def test_server_down_fails_candidates_not_the_search(tiny_search, remote_profile, server):
    from hwcompress.search import SearchConfig, run_search

    url = server.url
    server.shutdown()
    server.server_close()
    config = SearchConfig(**{**tiny_search, "profile": remote_profile(url, retries=0)})
    with pytest.raises(LatencyError, match="failed 1 tries"):
        run_search(config)  # the teacher itself cannot be measured: a clear stop, not a hang


def test_serve_command_as_a_subprocess(tiny_onnx, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HWCOMPRESS_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "hwcompress.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        client = RemoteClient(f"http://127.0.0.1:{port}", TOKEN, retries=8, backoff_s=0.25)
        assert client.info()["measured"] == 0
        assert _measure(client, tiny_onnx).median_ms > 0
    finally:
        proc.terminate()
        proc.wait(10)
    no_token = {k: v for k, v in env.items() if k != "HWCOMPRESS_TOKEN"}
    done = subprocess.run(cmd, env=no_token, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "HWCOMPRESS_TOKEN is not set" in done.stderr
