"""A calibrated per-layer latency table: fast, offline latency predictions for the search.

``hwcompress calibrate`` cuts ONNX models into *layers* — one compute op (Conv, Gemm, MatMul,
a pool, an add) with the light ops that follow it alone (batch-norm, activation, pooling,
flatten), which is also what onnxruntime fuses — and measures each distinct layer
configuration on its own, as a one-layer ONNX model, with the real source (the board's
benchmark server when the profile names one, else this machine). The table stores, per layer
configuration, its latency minus the fixed cost of one ``session.run``.

A model's predicted latency is that fixed cost plus the sum of its layers' entries. A layer
configuration that is not in the table is predicted by a least-squares fit
``ms ≈ a + b·MACs + c·elements`` over the entries of the same op sequence (or over all
entries when its kind has fewer than three); the result's notes say how many were fitted.

Tables also hold a fit of *whole-model* latencies on the kernels onnxruntime really runs
(:mod:`hwcompress.measure.kernels`: blocked vs generic convolutions, layout reorders, padded
channels, output sizes), chosen over the layer sums when it predicts held-out models
better, since one-layer measurements miss what the whole graph's optimisation does. The
whole models (the fit's and the check's) are timed in turn, round after round, so the
machine's drift between minutes hits them all alike.

The layer configurations come from random students of the teacher (the candidates a search
will produce), and calibration ends by checking predictions against full measurements of
further random students: the share within ±10 % is stored in the table and reported.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwcompress.errors import LatencyError, ModelError
from hwcompress.measure.kernels import KernelFit
from hwcompress.measure.onnx_graph import ALIAS_OPS, graph_info, value_shapes

if TYPE_CHECKING:
    from hwcompress.hardware.profile import DeviceProfile
    from hwcompress.measure.latency import LatencyResult

__all__ = [
    "LatencyTable",
    "Layer",
    "calibrate",
    "layers_of",
    "predict_latency",
]

TABLE_FORMAT = 2
#: Formats that still load; a format-1 table's kernel-level fit used other features and is
#: dropped (its layer sums predict).
READABLE_FORMATS = (1, 2)
#: Ops that join the layer before them when they are its output's only consumer: those that
#: reuse their input's buffer, and pooling.
LIGHT_OPS = ALIAS_OPS | {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}


@dataclass(frozen=True)
class Layer:
    """One layer of an ONNX model: a run of nodes and what it reads and writes.

    Attributes:
        key: Canonical description (op types, attributes, shapes): equal keys, equal work.
        kind: The op sequence alone (for the fallback fit).
        macs: Multiply-accumulates of the layer.
        elements: Output elements of the layer.
        nodes: Indices of the nodes in the graph.
        inputs: Activation tensors read from outside the layer.
        output: The tensor the layer writes.
    """

    key: str
    kind: str
    macs: int
    elements: int
    nodes: tuple[int, ...]
    inputs: tuple[str, ...]
    output: str


def _attr_value(attr: Any) -> Any:
    import onnx

    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list | tuple):
        return [v.decode(errors="replace") if isinstance(v, bytes) else v for v in value]
    if isinstance(value, float | int | str):
        return value
    return str(type(value).__name__)


def layers_of(model: Any) -> tuple[Any, list[Layer]]:
    """Cuts an ONNX model into layers (see the module docstring).

    Args:
        model: An ``onnx.ModelProto``.

    Returns:
        The model with inferred shapes (batch 1) and its layers in execution order.

    Raises:
        ModelError: If a shape cannot be inferred.
    """
    from hwcompress.measure.counting import numel
    from hwcompress.measure.onnx_graph import ONNX_MACS

    model, shapes, inits = graph_info(model)
    graph = model.graph
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    consts = set(inits) | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    layers: list[Layer] = []
    current: list[int] = []

    def close() -> None:
        if not current:
            return
        parts, macs, inputs = [], 0, []
        produced: set[str] = set()
        for i in current:
            node = graph.node[i]
            ins = [shapes.get(n) for n in node.input]
            out = shapes.get(node.output[0]) if node.output else None
            if out is None and node.op_type != "Constant":
                raise ModelError(
                    f"cannot infer the shape of '{node.output[0]}' ({node.op_type}); "
                    "export with static input shapes"
                )
            rule = ONNX_MACS.get(node.op_type)
            if rule is not None and out is not None:
                macs += rule(node, ins, out, inits)
            attrs = {a.name: _attr_value(a) for a in sorted(node.attribute, key=lambda a: a.name)}
            parts.append([node.op_type, attrs, [list(s) if s is not None else None for s in ins]])
            for n in node.input:
                if n and n not in consts and n not in produced and n not in inputs:
                    inputs.append(n)
            produced.update(node.output)
        last = graph.node[current[-1]].output[0]
        layers.append(
            Layer(
                key=json.dumps(parts, sort_keys=True, separators=(",", ":")),
                kind="+".join(p[0] for p in parts),
                macs=int(macs),
                elements=int(numel(shapes.get(last, ()))),
                nodes=tuple(current),
                inputs=tuple(inputs),
                output=last,
            )
        )
        current.clear()

    for i, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        act_in = [n for n in node.input if n and n not in consts]
        joins = (
            current
            and node.op_type in LIGHT_OPS
            and len(act_in) == 1
            and act_in[0] == graph.node[current[-1]].output[0]
            and consumers.get(act_in[0], 0) == 1
            and act_in[0] not in outputs
        )
        if not joins:
            close()
        current.append(i)
    close()
    return model, layers


def layer_model(model: Any, layer: Layer) -> Any:
    """A one-layer ONNX model computing ``layer`` of ``model`` (its weights included).

    Args:
        model: The model with inferred shapes, as :func:`layers_of` returns it.
        layer: One of its layers.
    """
    import onnx
    from onnx import helper

    graph = model.graph
    shapes = value_shapes(graph)
    nodes = [graph.node[i] for i in layer.nodes]
    used = {n for node in nodes for n in node.input}
    inits = [t for t in graph.initializer if t.name in used]
    const_nodes = [n for n in graph.node if n.op_type == "Constant" and set(n.output) & used]
    elem = onnx.TensorProto.FLOAT
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*graph.input, *graph.value_info]}
    inputs = [
        helper.make_tensor_value_info(n, types.get(n, elem), list(shapes[n])) for n in layer.inputs
    ]
    out_type = {vi.name: vi.type.tensor_type.elem_type for vi in [*graph.value_info, *graph.output]}
    outputs = [
        helper.make_tensor_value_info(
            layer.output, out_type.get(layer.output, elem), list(shapes[layer.output])
        )
    ]
    g = helper.make_graph([*const_nodes, *nodes], "layer", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=list(model.opset_import))
    m.ir_version = model.ir_version
    return m


def _empty_model(opset: Any, ir_version: int) -> Any:
    """The smallest model: one Identity on a single float (the fixed cost of a run)."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "empty", [x], [y])
    m = helper.make_model(g, opset_imports=list(opset))
    m.ir_version = ir_version
    return m


@dataclass
class LatencyTable:
    """Per-layer latencies of one device.

    Attributes:
        base_ms: The fixed cost of one ``session.run``.
        entries: Per layer key: ``{"ms", "kind", "macs", "elements"}``.
        meta: Where and how it was calibrated (profile, source, onnxruntime, check result).
        kernels: The kernel-level fit of whole-model latencies (``None``: the layer sums
            predict).
    """

    base_ms: float
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    kernels: KernelFit | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the JSON file)."""
        return {
            "format": TABLE_FORMAT,
            "base_ms": self.base_ms,
            "meta": self.meta,
            "entries": self.entries,
            **({"kernels": self.kernels.to_dict()} if self.kernels else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Writes the table as JSON (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Reads a table written by :meth:`save`.

        Raises:
            LatencyError: If the file is missing or not a latency table.
        """
        path = Path(path)
        if not path.is_file():
            raise LatencyError(
                f"{path}: no latency table; run 'hwcompress calibrate --profile ...' first "
                "(or set latency.table in the profile to the file)"
            )
        try:
            data = json.loads(path.read_text())
            if data.get("format") not in READABLE_FORMATS:
                raise ValueError(f"format {data.get('format')!r}, expected {TABLE_FORMAT}")
            kernels = data.get("kernels") if data["format"] == TABLE_FORMAT else None
            if data.get("kernels") and not kernels:
                meta = data.setdefault("meta", {})
                meta["note"] = (
                    "calibrated by an older hwcompress: its kernel-level fit is not used "
                    "(run 'hwcompress calibrate' again to get one)"
                )
            table = cls(
                float(data["base_ms"]),
                dict(data["entries"]),
                dict(data.get("meta", {})),
                KernelFit.from_dict(kernels) if kernels else None,
            )
            for entry in table.entries.values():
                float(entry["ms"]), int(entry["macs"]), int(entry["elements"]), str(entry["kind"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise LatencyError(
                f"{path}: not a latency table ({err}); run 'hwcompress calibrate' again"
            ) from None
        return table

    def _fit(self, kind: str | None) -> Callable[[int, int], float] | None:
        import numpy as np

        rows = [e for e in self.entries.values() if kind is None or e["kind"] == kind]
        if len(rows) < 3:
            return None
        a = np.array([[1.0, e["macs"] / 1e6, e["elements"] / 1e4] for e in rows])
        b = np.array([e["ms"] for e in rows])
        coef, *_ = np.linalg.lstsq(a, b, rcond=None)
        return lambda macs, elements: float(coef @ np.array([1.0, macs / 1e6, elements / 1e4]))

    def predict(self, layers: Sequence[Layer]) -> tuple[float, int]:
        """Predicted milliseconds of a model made of ``layers``, and how many were fitted.

        Raises:
            LatencyError: If the table is empty.
        """
        total, fitted = self.layer_sum(layers)
        return self.base_ms + total, fitted

    def layer_sum(self, layers: Sequence[Layer]) -> tuple[float, int]:
        """The sum of the layers' entries (fitted where missing), and how many were fitted.

        Raises:
            LatencyError: If the table is empty.
        """
        if not self.entries:
            raise LatencyError("the latency table is empty; run 'hwcompress calibrate' again")
        total, fitted = 0.0, 0
        fits: dict[str | None, Callable[[int, int], float] | None] = {}
        for layer in layers:
            entry = self.entries.get(layer.key)
            if entry is not None:
                total += entry["ms"]
                continue
            fitted += 1
            for kind in (layer.kind, None):
                if kind not in fits:
                    fits[kind] = self._fit(kind)
                if fits[kind] is not None:
                    total += max(0.0, fits[kind](layer.macs, layer.elements))  # type: ignore[misc]
                    break
            else:
                total += sum(e["ms"] for e in self.entries.values()) / len(self.entries)
        return total, fitted


_LOADED: dict[str, tuple[float, LatencyTable]] = {}


def load_table(path: Path) -> LatencyTable:
    """Loads a table, reusing the parsed copy while the file is unchanged."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    hit = _LOADED.get(str(path))
    if hit is None or hit[0] != mtime:
        hit = (mtime, LatencyTable.load(path))
        _LOADED[str(path)] = hit
    return hit[1]


def predict_latency(onnx_path: str | Path, profile: DeviceProfile) -> LatencyResult:
    """The ``table`` latency source: predicts ``onnx_path``'s latency from the profile's table.

    Raises:
        LatencyError: If there is no table.
        ModelError: If the model cannot be read.
    """
    from hwcompress.measure.latency import LatencyResult
    from hwcompress.measure.onnx_graph import load_onnx

    path = profile.latency_table_path()
    table = load_table(path)
    if table.kernels:
        from hwcompress.measure.kernels import kernel_features

        ms, unseen = table.kernels.predict(kernel_features(onnx_path, profile))
        note = f"predicted from the kernel-level fit of the latency table {path}"
        note += f" ({unseen} kernel features it was not calibrated on)" if unseen else ""
    else:
        _, layers = layers_of(load_onnx(onnx_path))
        ms, fitted = table.predict(layers)
        note = f"predicted from the latency table {path} ({len(layers) - fitted}/{len(layers)} "
        note += "layers looked up" + (f", {fitted} fitted)" if fitted else ")")
        if table.meta.get("note"):
            note += f"; {table.meta['note']}"
    return LatencyResult.estimate(
        ms,
        "table",
        note,
        provider=str(table.meta.get("provider", "")),
        threads=int(table.meta.get("threads", 0)),
    )


def random_students(
    teacher: Any,
    input_shape: Sequence[int],
    n: int,
    *,
    seed: int = 0,
    widths: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    keep_prob: float = 0.7,
) -> list[tuple[Any, Any]]:
    """``n`` random students of ``teacher`` (the kind a search produces), with their genomes.

    Each removable unit is kept with probability ``keep_prob`` and each shrinkable group gets a
    width drawn from ``widths``; genomes that cannot be built are skipped.
    """
    import torch

    from hwcompress.arch import Genome, build_spec, build_student
    from hwcompress.errors import GenomeError

    spec = build_spec(teacher, input_shape)
    gen = torch.Generator().manual_seed(seed)
    out: list[tuple[Any, Any]] = []
    seen: set[str] = set()
    for _ in range(20 * n):
        if len(out) >= n:
            break
        keep = {u.name: bool(torch.rand((), generator=gen) < keep_prob) for u in spec.removable}
        width = {
            g.key: float(widths[int(torch.randint(len(widths), (), generator=gen))])
            for g in spec.shrinkable
        }
        genome = Genome(keep=keep, width=width)
        if genome.key() in seen:
            continue
        seen.add(genome.key())
        try:
            out.append((build_student(teacher, genome, input_shape, spec=spec), genome))
        except GenomeError:
            continue
    return out


@dataclass(frozen=True, kw_only=True)
class CalibrateConfig:
    """Settings of :func:`calibrate`.

    Attributes:
        students: Random students whose layers are measured.
        fit_students: Random students measured whole for the kernel-level fit (the first
            ``students`` of them are also cut into layers); whole measurements are cheap, and
            the fit's tree correction needs a couple of hundred to generalise.
        check: Further random students measured whole to check the predictions.
        seed: Seed of the students.
        runs: Minimum timed runs per layer measurement (default: the profile's).
        min_time_s: Minimum timed duration per layer measurement (default: the profile's).
        rounds: Rounds in which every whole model is timed in turn.
        round_runs: Timed inferences of each whole model per round.
    """

    students: int = 20
    fit_students: int = 200
    check: int = 10
    seed: int = 0
    runs: int | None = None
    min_time_s: float | None = None
    rounds: int = 40
    round_runs: int = 5

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return dataclasses.asdict(self)


def measure_whole(
    paths: Sequence[Path],
    source: str,
    profile: DeviceProfile,
    *,
    rounds: int = 40,
    runs: int = 5,
) -> list[float]:
    """Median latency (ms) of whole models timed in turn, round after round.

    On this machine every model keeps one session and its result is the median of all its
    inferences (see :func:`~hwcompress.measure.latency.measure_local_many`); another source
    uploads every model once per round, so it gets an eighth of the rounds with eight times
    the runs, and the result is the median over rounds. Many short rounds keep the median
    repeatable on a shared machine, where whole rounds can run up to 2× slower as the
    neighbours' load moves.
    """
    import statistics

    from hwcompress.measure.latency import measure_local_many
    from hwcompress.measure.provenance import measure_real

    if source == "local":
        results = measure_local_many(list(paths), profile, rounds=rounds, runs=runs)
        return [r.median_ms for r in results]
    per_round: list[list[float]] = [[] for _ in paths]
    remote_rounds = max(1, rounds // 8)
    runs *= rounds // remote_rounds
    for _ in range(remote_rounds):
        for path, out in zip(paths, per_round, strict=True):
            result = measure_real(source, path, profile, runs=runs, warmup=3, min_time_s=0.0)
            out.append(result.median_ms)
    return [statistics.median(v) for v in per_round]


def calibrate(
    teacher: Any,
    input_shape: Sequence[int],
    profile: DeviceProfile,
    config: CalibrateConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[LatencyTable, list[dict[str, Any]]]:
    """Builds the profile's latency table from random students of ``teacher``.

    Measures with the profile's real source (``remote`` when ``latency.url`` is set, else
    ``local``): each distinct layer alone, then the teacher and every fit and check student
    whole, timed in turn (see :func:`measure_whole`). Fits the
    kernel-level model on the fit students, keeps it when it predicts a held-out third of
    them better than the layer sums, and checks the kept predictor on the ``config.check``
    other students.

    Args:
        teacher: The teacher module (weights do not matter for fp32 latency).
        input_shape: Input shape of one batch, e.g. ``(1, 1, 28, 28)``.
        profile: The device.
        config: Settings.
        progress: Receives one line per step.

    Returns:
        The table (not yet saved) and the check rows (``predicted_ms``, ``measured_ms``,
        ``error``).
    """
    import onnx

    from hwcompress.export.onnx import export_fp32
    from hwcompress.measure.kernels import kernel_features
    from hwcompress.measure.provenance import measure_real, real_source

    config = config or CalibrateConfig()
    say = progress or (lambda _msg: None)
    source = real_source(profile)
    kwargs: dict[str, Any] = {}
    if config.runs is not None:
        kwargs["runs"] = config.runs
    if config.min_time_s is not None:
        kwargs["min_time_s"] = config.min_time_s
    n_fit = max(config.students, config.fit_students)
    drawn = random_students(teacher, input_shape, n_fit + config.check, seed=config.seed)
    students = [s for s, _ in drawn]
    entries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hwcompress-calibrate-") as tmp:
        tmp_path = Path(tmp)
        paths = [export_fp32(teacher, input_shape, tmp_path / "teacher.onnx")]
        paths += [
            export_fp32(s, input_shape, tmp_path / f"student{i}.onnx")
            for i, s in enumerate(students)
        ]
        teacher_model = onnx.load(str(paths[0]))
        empty = tmp_path / "empty.onnx"
        onnx.save(_empty_model(teacher_model.opset_import, teacher_model.ir_version), empty)
        base = measure_real(source, empty, profile, **kwargs)
        say(f"fixed cost of one run: {base.median_ms:.4f} ms ({source})")
        for i, path in enumerate(paths[: 1 + config.students]):
            inferred, layers = layers_of(onnx.load(str(path)))
            new = [layer for layer in layers if layer.key not in entries]
            for layer in new:
                layer_path = tmp_path / f"layer{len(entries)}.onnx"
                onnx.save(layer_model(inferred, layer), layer_path)
                ms = measure_real(source, layer_path, profile, **kwargs).median_ms
                entries[layer.key] = {
                    "ms": max(0.0, ms - base.median_ms),
                    "kind": layer.kind,
                    "macs": layer.macs,
                    "elements": layer.elements,
                }
            label = f"student {i - 1}" if i else "teacher"
            say(f"{label}: {len(layers)} layers, {len(new)} new (table: {len(entries)})")
        say(
            f"timing {len(paths)} whole models in turn ({config.rounds} rounds × "
            f"{config.round_runs} inferences each)"
        )
        rounds = {"rounds": config.rounds, "runs": config.round_runs}
        measured = measure_whole(paths, source, profile, **rounds)
        features = [kernel_features(p, profile) for p in paths]
        table = LatencyTable(
            base.median_ms,
            entries,
            {
                "profile": profile.name,
                "source": source,
                "url": profile.latency.url if source == "remote" else None,
                "provider": base.provider,
                "threads": base.threads,
                "input_shape": list(input_shape),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "config": config.to_dict(),
            },
        )
        fit = 1 + n_fit
        table.kernels, table.meta["predictor"] = _choose_predictor(
            table, features[:fit], measured[:fit], paths[:fit]
        )
        say(
            f"predictor: {table.meta['predictor']['chosen']} (held-out third of the whole "
            f"models within ±10 %: kernel-level fit {table.meta['predictor']['kernels']:.0%}, "
            f"layer sums {table.meta['predictor']['layers']:.0%})"
        )
        rows = check_table(table, paths[fit:], measured[fit:], features[fit:])
        for row in rows:
            say(
                f"check: predicted {row['predicted_ms']:.4f} ms, measured "
                f"{row['measured_ms']:.4f} ms ({row['error']:+.1%})"
            )
    table.meta["check"] = summary(rows)
    return table, rows


def check_table(
    table: LatencyTable,
    paths: Sequence[Path],
    measured_ms: Sequence[float],
    features: Sequence[dict[str, float]],
) -> list[dict[str, Any]]:
    """One row per model: the table's prediction beside its measured latency.

    Args:
        table: The table.
        paths: The models' ONNX files.
        measured_ms: Their measured latencies.
        features: Their kernel features.
    """
    import onnx

    rows = []
    for path, measured, feats in zip(paths, measured_ms, features, strict=True):
        _, layers = layers_of(onnx.load(str(path)))
        predicted, fitted = table.predict(layers)
        layer_sum = predicted
        if table.kernels:
            predicted, _ = table.kernels.predict(feats)
        rows.append(
            {
                "layer_info": [[la.key, la.kind, la.macs, la.elements] for la in layers],
                "predicted_ms": predicted,
                "layer_table_ms": layer_sum,
                "measured_ms": measured,
                "error": predicted / measured - 1 if measured > 0 else math.inf,
                "layers": len(layers),
                "fitted": fitted,
            }
        )
    return rows


def _choose_predictor(
    table: LatencyTable,
    features: Sequence[dict[str, float]],
    latencies: Sequence[float],
    paths: Sequence[Path],
) -> tuple[KernelFit | None, dict[str, Any]]:
    """The kernel-level fit, or none (the layer sums predict) when the layer sums do better.

    The fit is made on the first two thirds of the whole-model measurements and both
    predictors are scored on the last third (share within ±10 %); the kept fit is then made
    on all of them.
    """
    import onnx

    cut = max(1, (2 * len(latencies)) // 3)
    trial = KernelFit.fit(features[:cut], latencies[:cut])
    held = list(zip(features[cut:], latencies[cut:], paths[cut:], strict=True))

    def within(predict: Callable[[dict[str, float], Path], float]) -> float:
        ok = [abs(predict(f, p) / ms - 1) <= 0.10 for f, ms, p in held if ms > 0]
        return sum(ok) / max(len(ok), 1)

    kernel_share = within(lambda f, p: trial.predict(f)[0])
    layer_share = within(lambda f, p: table.predict(layers_of(onnx.load(str(p)))[1])[0])
    chosen = "kernels" if kernel_share >= layer_share else "layers"
    info = {"chosen": chosen, "kernels": kernel_share, "layers": layer_share, "held_out": len(held)}
    return (KernelFit.fit(features, latencies) if chosen == "kernels" else None), info


def summary(rows: Sequence[dict[str, Any]], tolerance: float = 0.10) -> dict[str, Any]:
    """Share of predictions within ``tolerance`` of the measurement, and error statistics."""
    if not rows:
        return {"models": 0}
    errors = sorted(abs(r["error"]) for r in rows)
    return {
        "models": len(rows),
        "tolerance": tolerance,
        "within": sum(e <= tolerance for e in errors) / len(errors),
        "median_abs_error": errors[len(errors) // 2],
        "max_abs_error": errors[-1],
    }
