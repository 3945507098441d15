"""The report's pieces: metric formatting, the rows of its tables, and HTML/Markdown tables."""

from __future__ import annotations

import html
from typing import Any

__all__ = [
    "CSS",
    "ROWS",
    "architecture_rows",
    "device_summary_rows",
    "fmt_metric",
    "html_table",
    "md_table",
]


def fmt_metric(metric: str, value: Any) -> str:
    from hwcompress.fmt import human_bytes, human_count

    if value is None:
        return "—"
    if metric.endswith("bytes"):
        return human_bytes(value)
    if metric in ("params", "macs"):
        return human_count(value)
    if metric == "latency_ms":
        return f"{value:.4f} ms"
    if metric in ("val_accuracy", "test_accuracy", "val_accuracy_onnxruntime"):
        return f"{100 * value:.2f}%"
    if metric in ("compression", "weight_compression"):
        return f"{value:.1f}×"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


ROWS = (
    ("params", "parameters"),
    ("weight_bytes", "weight bytes"),
    ("macs", "MACs"),
    ("peak_activation_bytes", "peak activation memory"),
    ("latency_ms", "latency"),
    ("val_accuracy", "validation accuracy"),
    ("val_accuracy_onnxruntime", "validation accuracy, integer model in onnxruntime"),
    ("compression", "compression (parameters)"),
)


def architecture_rows(spec: dict[str, Any], genome: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per conv/linear layer of the teacher: what the product keeps of it."""
    keep, width = genome.get("keep", {}), genome.get("width", {})
    kernel, bits = genome.get("kernel", {}), genome.get("weight_bits", {})
    rows = []
    for layer in spec["layers"]:
        if layer["kind"] not in ("conv", "dwconv", "gconv", "linear"):
            continue
        removed = layer.get("unit") is not None and keep.get(layer["unit"], True) is False
        factor = width.get(layer["out_group"], 1.0)
        out = layer["out_channels"]
        rows.append(
            {
                "layer": layer["name"],
                "kind": layer["kind"],
                "teacher": f"{layer['in_channels']}→{out}, "
                + "×".join(map(str, layer.get("kernel", [1]))),
                "kept": not removed,
                "width": "—" if removed else f"{factor:g} ({max(1, round(factor * out))} ch)",
                "kernel": "—"
                if removed
                else "×".join(map(str, kernel.get(layer["name"], layer.get("kernel", [1])))),
                "bits": "—" if removed else str(bits.get(layer["name"], 32)),
            }
        )
    return rows


def device_summary_rows(device: dict[str, Any]) -> list[list[str]]:
    """The device's key figures as label/value rows (empty for runs that did not record it)."""
    from hwcompress.fmt import human_bytes

    if not device:
        return []
    peaks = ", ".join(f"{p} {g:g}" for p, g in device.get("peak_gops", {}).items())
    rows = [
        ["device", f"{device.get('name', '')} — {device.get('description', '')}"],
        ["peak compute (GOP/s)", peaks],
        ["memory bandwidth", f"{device.get('bandwidth_gbps', 0):g} GB/s"],
        [
            "RAM / storage",
            f"{human_bytes(device.get('ram_bytes', 0))} / "
            f"{human_bytes(device.get('storage_bytes', 0))}",
        ],
        [
            "bit-widths",
            f"weights {'/'.join(map(str, device.get('weight_bits', [])))}, "
            f"activations {'/'.join(map(str, device.get('activation_bits', [])))}",
        ],
        ["runtime", f"{', '.join(device.get('providers', []))}; {device.get('threads')} threads"],
        [
            "latency",
            f"{device.get('latency_source')} source, budget "
            f"{device.get('latency_budget_ms', 0):g} ms",
        ],
    ]
    return rows


def html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1000px;
color:#222;line-height:1.4}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.ok{color:#1a7f37}.bad{color:#c62828}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%}
"""
