"""The benchmark server that runs on the board (``hwcompress serve``) and its client."""

from hwcompress.measure.remote import RemoteClient, client_for, measure_remote
from hwcompress.serve.server import BenchServer, ServeConfig, check_model_bytes, serve_forever

__all__ = [
    "BenchServer",
    "RemoteClient",
    "ServeConfig",
    "check_model_bytes",
    "client_for",
    "measure_remote",
    "serve_forever",
]
