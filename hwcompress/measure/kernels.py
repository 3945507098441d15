"""Kernel-level latency features and their fit, in the spirit of nn-Meter's kernel detection.

A latency table that sums one-layer measurements misses what onnxruntime does to the whole
graph: on x86 its NCHWc transformer runs a convolution in a blocked layout only when the
channel counts allow it (and pads them to the block), falls back to a generic convolution
(im2col + GEMM) otherwise, and inserts layout reorders between the two. Two students with
equal MACs can differ by 2× in latency because of that, and a one-layer model pays reorders
the whole graph does not. So the features here are read from the graph onnxruntime really
runs (its optimised graph, built with the profile's provider and threads), with every
tensor's shape carried through it: per kernel class (blocked convolution, generic
convolution, 1×1 and depthwise variants, reorder, pooling, addition, matmul) its count, its
MACs at the padded channel counts — split by output size, since a GEMM over a 1×1 or 2×2
output runs at a fraction of the speed of one over 8×8 —, its weights and the elements it
reads and writes.

The model (:class:`KernelFit`) is a non-negative linear fit of whole-model latencies on
those sums, corrected by a small boosted-tree model of the linear fit's relative error on
the same features (cache and threading effects no sum of kernels captures); both are
calibrated on whole random students of the teacher — the search's own grid — and stored as
plain data (JSON), never as code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwcompress.measure.onnx_ops import ADD_OPS, CONV_OPS, MATMUL_OPS, POOL_OPS, WEIGHT_INPUT

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile

__all__ = ["KernelFit", "fit_kernels", "kernel_features", "predict_kernels"]

#: Output positions (H·W) up to which a convolution's MACs count in one bucket.
_SIZE_BUCKETS = ((1, "1"), (4, "4"), (16, "16"), (64, "64"))
#: Fewer whole models than this: no tree correction (the linear fit alone).
MIN_CORRECTION_MODELS = 30
#: The correction's input beside the features: the log of the linear fit's latency.
LINEAR_FEATURE = "log_linear_ms"


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _window_out(size: Sequence[int], a: Mapping[str, Any], kernel: Sequence[int]) -> list[int]:
    """Spatial output size of a convolution or pooling window (attributes ``a``) over ``size``."""
    nd = len(kernel)
    strides = list(a.get("strides") or [1] * nd)
    pads = list(a.get("pads") or [0] * (2 * nd))
    dilations = list(a.get("dilations") or [1] * nd)
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto.startswith("SAME"):
        return [math.ceil(size[i] / strides[i]) for i in range(nd)]
    return [
        (size[i] + pads[i] + pads[i + nd] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
        for i in range(nd)
    ]


def _bucket(positions: int) -> str:
    return next((name for limit, name in _SIZE_BUCKETS if positions <= limit), "big")


def kernel_features(onnx_path: str | Path, profile: DeviceProfile) -> dict[str, float]:
    """Sums of the kernel-level features of the graph onnxruntime runs for ``onnx_path``.

    Args:
        onnx_path: An fp32 ONNX model with static shapes.
        profile: Gives the provider and threads of the session (as latency is measured).

    Returns:
        Feature name → value (MACs and weights in millions, elements in ten-thousands).
    """
    import onnxruntime as ort

    from hwcompress.measure.onnx_graph import graph_info, load_onnx
    from hwcompress.measure.ort_graph import choose_provider, optimized_graph

    path = Path(onnx_path)
    _, shapes, _ = graph_info(load_onnx(path))  # batch 1, the original graph's shapes
    provider, _ = choose_provider(profile.runtime.providers)
    options = ort.SessionOptions()
    options.intra_op_num_threads = profile.runtime.threads
    options.log_severity_level = 3
    graph = optimized_graph(options, path, provider)
    dims = {t.name: tuple(t.dims) for t in graph.initializer}
    features: dict[str, float] = {"weights": sum(math.prod(d) for d in dims.values()) / 1e6}

    def add(name: str, value: float) -> None:
        features[name] = features.get(name, 0.0) + value

    def shape_of(name: str) -> tuple[int, ...] | None:
        # the optimiser keeps a tensor's name or adds a suffix to it ("…_nchwc")
        return shapes.get(name) or shapes.get(name.removesuffix("_nchwc"))

    for node in graph.node:
        op = node.op_type
        attrs = _attrs(node)
        x = shape_of(node.input[0]) if node.input else None
        size = math.prod(x) / 1e4 if x else 0.0
        out = x
        at = WEIGHT_INPUT.get(op, 1)
        w = dims.get(node.input[at], ()) if len(node.input) > at else ()
        if op in CONV_OPS and len(w) >= 3:
            # integer convolutions run channels-last here
            nhwc = node.domain.endswith("nhwc") or attrs.get("channels_last") == 1
            spatial = (x[1:-1] if nhwc else x[2:]) if x and len(x) > 2 else None
            hw = _window_out(spatial, attrs, w[2:]) if spatial else [1] * len(w[2:])
            out = (1, *hw, w[0]) if nhwc else (1, w[0], *hw)
            positions = math.prod(hw)
            group = int(attrs.get("group", 1))
            kind = "blocked" if node.domain == "com.microsoft.nchwc" else "conv"
            if group > 1 and w[1] == 1:
                kind += "_dw"
            elif math.prod(w[2:]) == 1:
                kind += "_1x1"
            elif kind == "conv":  # im2col: the expanded input the GEMM reads
                add("conv_im2col", w[1] * group * math.prod(w[2:]) * positions / 1e4)
            add(f"{kind}_n", 1)
            add(f"{kind}_macs_{_bucket(positions)}", math.prod(w) * positions / 1e6)
            add(f"{kind}_weights", math.prod(w) / 1e6)
            add(f"{kind}_in", size)
            add(f"{kind}_out", w[0] * positions / 1e4)
            fused_sum = op == "FusedConv" or node.domain == "com.microsoft.nchwc"
            if fused_sum and len(node.input) > 3 and node.input[3]:  # a residual added
                add(f"{kind}_sum", 1)
        elif op in POOL_OPS:
            if x and op.startswith("Global"):
                out = (*x[:2], *[1] * (len(x) - 2))
            elif x:
                out = (*x[:2], *_window_out(x[2:], attrs, attrs.get("kernel_shape", [])))
            add("pool_n", 1)
            add("pool_in", size)
        elif op in ("ReorderInput", "ReorderOutput"):
            channels = attrs.get("channels")
            if x and op == "ReorderOutput" and channels:
                out = (x[0], int(channels), *x[2:])
            add("reorder_n", 1)
            add("reorder_elements", size)
        elif op in MATMUL_OPS:
            out = None
            add("matmul_n", 1)
            add("matmul_macs", math.prod(w or (1,)) / 1e6)
        elif op == "Transpose" and x:
            perm = attrs.get("perm") or list(range(len(x)))[::-1]
            out = tuple(x[i] for i in perm)
            add("other_n", 1)
            add("other_elements", size)
        elif op in ADD_OPS:
            add("add_n", 1)
            add("add_elements", size)
        else:
            out = shape_of(node.output[0]) if node.output else None
            add("other_n", 1)
            add("other_elements", size)
        if out is not None:
            for name in node.output:
                shapes.setdefault(name, tuple(out))
    return features


def _row(names: Sequence[str], features: Mapping[str, float], linear_ms: float) -> list[float]:
    """The correction's input: the features by name, and the linear fit's log-latency."""
    return [math.log(linear_ms) if k == LINEAR_FEATURE else features.get(k, 0.0) for k in names]


def _trees_predict(trees: Mapping[str, Any], row: Sequence[float]) -> float:
    """The boosted trees' raw prediction for one feature row."""
    import numpy as np

    row = np.asarray(row, dtype=np.float32).tolist()  # the trees split float32 features
    total = float(trees["init"])
    for tree in trees["trees"]:
        node = 0
        while tree["left"][node] >= 0:
            f = tree["feature"][node]
            node = tree["left"][node] if row[f] <= tree["threshold"][node] else tree["right"][node]
        total += float(trees["rate"]) * float(tree["value"][node])
    return total


def _fit_trees(rows: Any, target: Any, seed: int = 0) -> dict[str, Any]:
    """Boosted regression trees (huber loss, 400 of depth 3) as plain data."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingRegressor

    rate = 0.03
    model = GradientBoostingRegressor(
        loss="huber",
        n_estimators=400,
        max_depth=3,
        learning_rate=rate,
        subsample=0.8,
        random_state=seed,
    ).fit(rows, target)
    trees = []
    for est in model.estimators_[:, 0]:
        t = est.tree_
        trees.append(
            {
                "feature": [int(v) for v in t.feature],
                "threshold": [float(v) for v in t.threshold],
                "left": [int(v) for v in t.children_left],
                "right": [int(v) for v in t.children_right],
                "value": [float(v) for v in t.value[:, 0, 0]],
            }
        )
    data: dict[str, Any] = {"init": 0.0, "rate": rate, "trees": trees}
    data["init"] = float(model.predict(rows[:1])[0]) - _trees_predict(data, rows[0])
    check = np.array([_trees_predict(data, r) for r in rows])
    if not np.allclose(check, model.predict(rows), atol=1e-6):  # pragma: no cover - a guard
        raise RuntimeError("the boosted trees could not be written as plain data")
    return data


@dataclass(frozen=True)
class KernelFit:
    """Whole-model latency from kernel features: a linear fit and its tree correction.

    Attributes:
        linear: Non-negative coefficient per feature name, and ``base`` (the fixed cost).
        correction: Boosted trees over ``names`` (the features and the linear fit's log
            latency) predicting the log of measured over linear latency (empty: none).
    """

    linear: dict[str, float]
    correction: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        features: Sequence[Mapping[str, float]],
        latencies_ms: Sequence[float],
        *,
        correct: bool = True,
    ) -> KernelFit:
        """Fits both parts on whole-model measurements (the correction from 30 models on)."""
        import numpy as np

        linear = fit_kernels(features, latencies_ms)
        if not correct or len(features) < MIN_CORRECTION_MODELS:
            return cls(linear)
        names = [*sorted({k for f in features for k in f}), LINEAR_FEATURE]
        base = np.array([predict_kernels(linear, f)[0] for f in features])
        y = np.asarray(latencies_ms, dtype=float)
        if (base <= 0).any() or (y <= 0).any():
            return cls(linear)
        rows = np.array([_row(names, f, b) for f, b in zip(features, base, strict=True)])
        return cls(linear, {"names": names, **_fit_trees(rows, np.log(y / base))})

    def predict(self, features: Mapping[str, float]) -> tuple[float, int]:
        """Predicted milliseconds, and how many feature kinds the fit never saw."""
        ms, unseen = predict_kernels(self.linear, features)
        if self.correction and ms > 0:
            row = _row(self.correction["names"], features, ms)
            ms *= math.exp(_trees_predict(self.correction, row))
        return ms, unseen

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        data: dict[str, Any] = {"linear": self.linear}
        if self.correction:
            data["correction"] = self.correction
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelFit:
        """Reads :meth:`to_dict`'s form (a bare coefficient dict is a linear fit alone).

        Raises:
            ValueError, KeyError, TypeError: If ``data`` is not a kernel fit.
        """
        if "linear" not in data:
            return cls({str(k): float(v) for k, v in data.items()})
        linear = {str(k): float(v) for k, v in dict(data["linear"]).items()}
        correction = dict(data.get("correction") or {})
        if correction:
            n = len(correction["names"])
            for tree in correction["trees"]:
                nodes = len(tree["value"])
                arrays = ("feature", "threshold", "left", "right")
                if not all(len(tree[k]) == nodes for k in arrays):
                    raise ValueError("a correction tree's arrays differ in length")
                children = zip(tree["left"], tree["right"], strict=True)
                if any(
                    not (c == -1 or i < c < nodes)  # forward only: no loops
                    for i, pair in enumerate(children)
                    for c in pair
                ):
                    raise ValueError("a correction tree points outside itself")
                splits = zip(tree["feature"], tree["left"], strict=True)
                if any(f >= n for f, child in splits if child >= 0):
                    raise ValueError("a correction tree reads a feature it does not name")
            float(correction["init"]), float(correction["rate"])
        return cls(linear, correction)


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
    """Predicted milliseconds of a linear fit, and how many feature kinds it never saw."""
    unseen = sum(1 for k, v in features.items() if k not in fit and v)
    return fit.get("base", 0.0) + sum(fit.get(k, 0.0) * v for k, v in features.items()), unseen
