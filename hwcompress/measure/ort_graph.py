"""What onnxruntime really runs: the provider it gets, the optimised graph and its kernels.

The session saves its optimised graph and it is read back, so a result can say which kernels
actually ran: a quantized model that silently runs float kernels is visible.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = [
    "choose_provider",
    "dequantize_left",
    "kernel_counts",
    "optimized_graph",
    "session_with_graph",
]


def choose_provider(wanted: tuple[str, ...]) -> tuple[str, list[str]]:
    """Picks the first of ``wanted`` that this onnxruntime offers.

    Returns:
        The provider and notes saying what was asked for but unavailable.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    notes: list[str] = []
    for provider in wanted:
        if provider in available:
            return provider, notes
        notes.append(f"{provider} is not available in this onnxruntime build")
    notes.append("measured on CPUExecutionProvider instead")
    return "CPUExecutionProvider", notes


def session_with_graph(session_options: Any, model_path: Path, provider: str) -> tuple[Any, Any]:
    """Builds a session that saves its optimised graph; returns the session (ready to run:
    one session per file both tells what runs and times it) and that graph (a GraphProto)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        session_options.optimized_model_filepath = str(out)
        try:
            session = ort.InferenceSession(str(model_path), session_options, providers=[provider])
            graph = onnx.load(str(out)).graph
        finally:
            session_options.optimized_model_filepath = ""
    return session, graph


def optimized_graph(session_options: Any, model_path: Path, provider: str) -> Any:
    """The optimised graph (a GraphProto) a session of ``model_path`` runs."""
    return session_with_graph(session_options, model_path, provider)[1]


def kernel_counts(graph: Any) -> dict[str, int]:
    """Op types of a graph (``domain:op`` outside the default domain), counted."""
    counts = Counter(
        f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in graph.node
    )
    return dict(sorted(counts.items()))


def dequantize_left(graph: Any) -> int:
    """``DequantizeLinear`` nodes left inside an optimised graph (not producing its outputs).

    Each one is a place where the integer path drops to float and (usually) a
    ``QuantizeLinear`` brings it back: 0 means integers from the first quantizer to the last
    kernel.
    """
    outputs = {o.name for o in graph.output}
    return sum(
        1 for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] not in outputs
    )
