"""``hwcompress bench``: measure an ONNX model on a device profile."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hwcompress.cli.app import app, console
from hwcompress.errors import HwCompressError


@app.command()
def bench(
    model: Annotated[str, typer.Argument(help="ONNX model file, or builtin:NAME.")],
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name or YAML path.")],
    runs: Annotated[int | None, typer.Option(min=1, help="Minimum timed runs.")] = None,
    warmup: Annotated[int | None, typer.Option(min=0, help="Untimed warm-up runs.")] = None,
    input_shape: Annotated[
        str, typer.Option(help="Input shape for builtin:NAME models, e.g. 1,1,8,8.")
    ] = "1,1,8,8",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Measure an ONNX model on a device profile: metrics, latency, kernels, constraints."""
    import tempfile

    from hwcompress.bench import bench as run_bench
    from hwcompress.hardware import load_profile

    prof = load_profile(profile)
    with tempfile.TemporaryDirectory() as tmp:
        path = _resolve_model(model, input_shape, Path(tmp))
        with console.status(f"Measuring {model} on {prof.name} ..."):
            report = run_bench(path, prof, runs=runs, warmup=warmup)
    _render_bench(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"report written to {json_out}")
    if not report.fits:  # a script can tell a model that does not fit from one that does
        raise typer.Exit(code=1)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    shown = text if len(text) <= 40 else text[:37] + "..."
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise HwCompressError(
            f"--input-shape {shown!r}: give four positive integers (batch, channels, height, "
            "width) separated by commas, e.g. 1,1,8,8"
        )
    from hwcompress.measure.latency import MAX_INPUT_BYTES

    if math.prod(shape) * 4 > MAX_INPUT_BYTES:
        raise HwCompressError(
            f"--input-shape {shown!r}: one input would take over "
            f"{MAX_INPUT_BYTES >> 30} GiB; give the size the model runs on"
        )
    return shape


def _resolve_model(model: str, input_shape: str, tmp: Path) -> Path:
    if model.startswith("builtin:"):
        from hwcompress.export import export_fp32
        from hwcompress.models import BUILTIN_MODELS, build_builtin

        name = model.split(":", 1)[1]
        if name not in BUILTIN_MODELS:
            raise HwCompressError(
                f"unknown built-in model '{name}'; choose one of "
                f"{', '.join(sorted(BUILTIN_MODELS))}"
            )
        shape = _parse_shape(input_shape)
        net = build_builtin(name, in_channels=shape[1])
        return export_fp32(net, shape, tmp / f"{name}.onnx")
    return Path(model)


def _render_bench(report) -> None:
    from hwcompress.fmt import bit_widths, human_bytes, human_count, human_metric

    s, lat, roof = report.stats, report.latency, report.roofline
    t = Table(title=f"{Path(report.model).name} on {report.profile}", show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value")
    t.add_row("parameters", human_count(s.params))
    t.add_row("MACs", human_count(s.macs))
    t.add_row("weight bytes", human_bytes(s.weight_bytes))
    t.add_row("peak activation", human_bytes(s.peak_activation_bytes))
    t.add_row(
        "bit-widths",
        f"weights {bit_widths(s.weight_bit_widths)}, "
        f"activations {bit_widths(s.activation_bit_widths)} ({s.precision})",
    )
    t.add_row("latency source", f"{lat.source}: {lat.where}" if lat.where else lat.source)
    t.add_row("latency median", f"{lat.median_ms:.4f} ms")
    if lat.runs:
        t.add_row("latency p90 / min", f"{lat.p90_ms:.4f} / {lat.min_ms:.4f} ms")
        t.add_row("stdev / runs", f"{lat.stdev_ms:.4f} ms / {lat.runs}")
    t.add_row("roofline floor", f"{roof.floor_ms:.4f} ms ({roof.precision}, {roof.bound}-bound)")
    if lat.kernels:
        t.add_row("kernels that ran", ", ".join(f"{k}×{n}" for k, n in lat.kernels.items()))
        t.add_row("integer kernels", ", ".join(lat.integer_kernels) or "none")
    for note in lat.notes:
        t.add_row("note", note)
    console.print(t)
    if lat.warning:
        console.print(f"[bold yellow]warning:[/] {lat.warning}")
    c = Table(title="Constraints")
    c.add_column("row", no_wrap=True)
    for col in ("constraint", "value", "bound", "slack", ""):
        c.add_column(col)
    for row in report.constraints:
        metric = row["metric"] or "value"
        c.add_row(
            row["name"],
            row["description"],
            human_metric(metric, row["value"]),
            human_metric(metric, row["bound"]),
            human_metric(metric, row["slack"]),
            "[green]ok[/]" if row["ok"] else "[red]violated[/]",
        )
    console.print(c)
    if report.fits:
        console.print("[bold green]FITS[/] every constraint of the profile")
    else:
        bad = [r["name"] for r in report.constraints if not r["ok"]]
        console.print(f"[bold red]VIOLATES[/] {', '.join(bad)}")
