"""Kernel-level latency features and their fit, in the spirit of nn-Meter's kernel detection.

A latency table that sums one-layer measurements misses what onnxruntime does to the whole
graph: on x86 its NCHWc transformer runs a convolution in a blocked layout only when the
channel counts allow it (and pads them to the block), falls back to a generic convolution
otherwise, and inserts layout reorders between the two. Two students with equal MACs can differ
by 2× in latency because of that, and a one-layer model pays reorders the whole graph does
not. So the features here are read from the graph onnxruntime really runs (its optimised
graph, built with the profile's provider and threads): per kernel class (blocked convolution,
generic convolution, depthwise, reorder, pooling, addition, matmul) its count, its MACs at the
padded channel counts and the elements it reads and writes. A non-negative linear fit of
whole-model latencies on those sums is the model (:func:`fit_kernels`); it is calibrated on
whole random students of the teacher — the search's own grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile

__all__ = ["fit_kernels", "kernel_features", "predict_kernels"]

_CONVS = frozenset({"Conv", "FusedConv", "QLinearConv", "ConvInteger"})
_POOLS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})


def kernel_features(onnx_path: str | Path, profile: DeviceProfile) -> dict[str, float]:
    """Sums of the kernel-level features of the graph onnxruntime runs for ``onnx_path``.

    Args:
        onnx_path: An fp32 ONNX model with static shapes.
        profile: Gives the provider and threads of the session (as latency is measured).

    Returns:
        Feature name → value (MACs in millions, elements in ten-thousands).
    """
    import onnxruntime as ort

    from hwcompress.measure.latency import choose_provider, optimized_graph
    from hwcompress.measure.onnx_graph import load_onnx
    from hwcompress.measure.table import _graph_info

    path = Path(onnx_path)
    original, shapes, _ = _graph_info(load_onnx(path))  # batch 1, shapes inferred
    weights = {t.name: tuple(t.dims) for t in original.graph.initializer}
    # the original convolutions, each with its kernel size and output: the optimiser may
    # reorder them (a residual block's 1×1 downsample moves ahead of its 3×3 convs), so an
    # optimised convolution is matched to the next unused original one of its kernel size
    conv_out = [
        (weights.get(n.input[1], ())[2:], n.output[0])
        for n in original.graph.node
        if n.op_type == "Conv" and len(n.input) > 1
    ]
    used = [False] * len(conv_out)

    def output_of(kernel: tuple[int, ...]) -> tuple[int, ...] | None:
        for i, (k, out) in enumerate(conv_out):
            if not used[i] and k == kernel:
                used[i] = True
                return shapes.get(out)
        return None

    provider, _ = choose_provider(profile.runtime.providers)
    options = ort.SessionOptions()
    options.intra_op_num_threads = profile.runtime.threads
    options.log_severity_level = 3
    graph = optimized_graph(options, path, provider)
    dims = {t.name: tuple(t.dims) for t in graph.initializer}
    features: dict[str, float] = {}

    def add(name: str, value: float) -> None:
        features[name] = features.get(name, 0.0) + value

    last = 0  # elements of the last convolution's output (what reorders and pools move)
    for node in graph.node:
        op = node.op_type
        if op in _CONVS and len(node.input) > 1 and node.input[1] in dims:
            w = dims[node.input[1]]
            out = output_of(tuple(w[2:]))
            hw = math.prod(out[2:]) if out and len(out) > 2 else 1
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            kind = "blocked" if node.domain == "com.microsoft.nchwc" else "conv"
            if group > 1 and w[1] == 1:
                kind += "_dw"
            add(f"{kind}_n", 1)
            add(f"{kind}_macs", w[0] * w[1] * math.prod(w[2:]) * hw / 1e6)
            add(f"{kind}_in", w[1] * group * hw / 1e4)
            last = w[0] * hw
        elif op in ("ReorderInput", "ReorderOutput"):
            add("reorder_n", 1)
            add("reorder_elements", last / 1e4)
        elif op in ("Gemm", "MatMul", "FusedGemm", "FusedMatMul"):
            w = dims.get(node.input[1], (1, 1)) if len(node.input) > 1 else (1, 1)
            add("matmul_n", 1)
            add("matmul_macs", math.prod(w) / 1e6)
        elif op in _POOLS:
            add("pool_n", 1)
            add("pool_elements", last / 1e4)
        elif op in ("Add", "Sum", "Mul"):
            add("add_n", 1)
            add("add_elements", last / 1e4)
        else:
            add("other_n", 1)
    return features


def fit_kernels(
    features: Sequence[Mapping[str, float]], latencies_ms: Sequence[float]
) -> dict[str, float]:
    """A non-negative least-squares fit of whole-model latencies on kernel features.

    Each row is weighted by 1 / its latency, so the fit minimises relative errors (what the
    ±10 % target counts). The intercept (``base``) is the fixed cost of one run.

    Returns:
        Coefficient per feature name, and ``base``.
    """
    import numpy as np
    from scipy.optimize import nnls

    names = sorted({k for f in features for k in f})
    x = np.array([[1.0, *(f.get(k, 0.0) for k in names)] for f in features])
    y = np.array(latencies_ms, dtype=float)
    weight = 1.0 / np.maximum(y, 1e-9)
    coef, _ = nnls(x * weight[:, None], y * weight)
    return {"base": float(coef[0]), **{k: float(c) for k, c in zip(names, coef[1:], strict=True)}}


def predict_kernels(fit: Mapping[str, float], features: Mapping[str, float]) -> tuple[float, int]:
    """Predicted milliseconds, and how many feature kinds the fit never saw (not counted)."""
    unseen = sum(1 for k, v in features.items() if k not in fit and v)
    return fit.get("base", 0.0) + sum(fit.get(k, 0.0) * v for k, v in features.items()), unseen
