from __future__ import annotations

import threading

import pytest

from hwcompress.serve import BenchServer, ServeConfig

TOKEN = "test-token-0123456789"


@pytest.fixture
def server_factory():
    """Starts in-process benchmark servers on loopback (free ports); stops them after."""
    started: list[BenchServer] = []

    def start(**kwargs) -> BenchServer:
        server = BenchServer(ServeConfig(token=TOKEN, port=0, **kwargs))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(server_factory) -> BenchServer:
    return server_factory()


@pytest.fixture
def tiny_onnx(tiny_net, tmp_path):
    from hwcompress.export import export_fp32

    return export_fp32(tiny_net, (1, 1, 8, 8), tmp_path / "tiny.onnx")


@pytest.fixture
def remote_profile(profile_data, write_profile, monkeypatch):
    """A profile whose latency comes from a given server (token in the environment)."""

    def make(url: str, **latency) -> str:
        monkeypatch.setenv("HWC_TEST_TOKEN", TOKEN)
        data = dict(profile_data)
        data["latency"] = {
            "source": "remote",
            "url": url,
            "token_env": "HWC_TEST_TOKEN",
            "budget_ms": 10,
            "runs": 5,
            "warmup": 1,
            "min_time_s": 0.01,
            "retries": 1,
            "timeout_s": 30,
            **latency,
        }
        return str(write_profile(data, "remote.yaml"))

    return make
