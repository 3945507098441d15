"""``hwcompress export`` (a student as deployable ONNX, or one picked from a run's front) and
``hwcompress report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hwcompress.cli.app import app, console
from hwcompress.errors import HwCompressError


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of a search run.")],
) -> None:
    """Write an HTML report (plots embedded) and a Markdown summary of a search run."""
    from hwcompress.report import write_report

    rep = write_report(run_dir)
    console.print(f"report: {rep.html} (summary: {rep.markdown})")


@app.command("export")
def export_cmd(
    source: Annotated[
        Path, typer.Argument(help="A search run folder (its best student) or a student .pt file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="onnx (fp32) or qcdq (integer ONNX); default: qcdq for a quantized student or "
            "a device with 8-bit kernels, else onnx.",
        ),
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Dataset folder for calibration and the parity check.")
    ] = None,
    no_data: Annotated[
        bool,
        typer.Option("--no-data", help="Skip the parity check (quantized students only)."),
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Only for a student of a module.path:factory teacher: name that factory to "
            "allow importing it (a checkpoint alone never makes hwcompress import code)."
        ),
    ] = None,
    pick: Annotated[
        str | None,
        typer.Option(
            help="From a run folder, the most accurate student on its accuracy-latency front "
            "within this latency: latency_ms=2.5, or latency_ms=3x (3x faster than the "
            "teacher); no new search.",
        ),
    ] = None,
) -> None:
    """Export a searched student as deployable ONNX and check what onnxruntime runs."""
    from hwcompress.export.student import default_format, export_student, load_student

    if pick is not None:
        source = _picked(source, pick)
    student = load_student(source, teacher=teacher)
    if fmt is None:
        fmt, why = default_format(student)
        console.print(f"format {fmt}: {why} (--format to choose)")
    data = None
    if not no_data:
        from hwcompress.data import DataConfig, load_data

        meta = student.meta
        data = load_data(
            DataConfig(
                name=meta.get("dataset", "digits"),
                data_dir=data_dir if data_dir is not None else meta.get("data_dir"),
                seed=int(meta.get("seed", 0)),
            )
        )
    with console.status(f"Exporting {student.source} as {fmt} ..."):
        report = export_student(student, fmt, out, data)
    _render_export(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"report written to {json_out}")


def _picked(run_dir: Path, text: str) -> Path:
    """The checkpoint of the front student ``--pick`` chooses in ``run_dir``."""
    from hwcompress.search.front import pick, pick_checkpoint

    results_path = run_dir / "results.json"
    if not run_dir.is_dir() or not results_path.is_file():
        raise HwCompressError(
            f"--pick needs a finished search run folder; {run_dir} has no results.json "
            "(finish the run with 'hwcompress search --resume --out RUN' first)"
        )
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
        if not isinstance(results, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as err:
        raise HwCompressError(
            f"{results_path} is corrupt ({str(err).splitlines()[0][:120]}); write it again "
            f"with 'hwcompress search --resume --out {run_dir}'"
        ) from None
    chosen = pick(results, text)
    label = f" ({chosen['label']})" if chosen.get("label") else ""
    console.print(
        f"picked {chosen['id']}: {chosen['stage']} {chosen['method']}{label}, measured "
        f"{chosen['latency_ms']:.4g} ms, validation {chosen['val_accuracy']:.2%}, "
        f"{chosen['params']:,} params"
    )
    return pick_checkpoint(run_dir, results, chosen)


def _kernel_list(kernels: dict[str, int]) -> str:
    return ", ".join(f"{k}×{n}" for k, n in kernels.items()) or "none"


def _render_export(report) -> None:
    from hwcompress.fmt import human_bytes

    table = Table(title=f"{report.path} ({report.format})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    how = {"": "float", "qat": "quantization-aware trained", "ptq-int8": "int8 after training"}
    table.add_row("weights", how.get(report.quantized_by, report.quantized_by))
    table.add_row("file size", human_bytes(report.file_bytes))
    table.add_row("weight bytes (true bits)", human_bytes(report.weight_bytes))
    table.add_row("peak activation memory", human_bytes(report.peak_activation_bytes))
    table.add_row("integer kernels", _kernel_list(report.integer_kernels))
    table.add_row("float conv/matmul kernels", _kernel_list(report.float_compute_kernels))
    if report.format == "qcdq":
        table.add_row("dequantize nodes left (0: all-integer path)", str(report.dequantize_left))
    if report.parity is not None:
        table.add_row("top-1 agreement with PyTorch", f"{report.parity:.2%}")
    labels = {
        "val_onnxruntime": "validation accuracy (onnxruntime)",
        "val_float": "validation accuracy (float student)",
        "val_pytorch": "validation accuracy (PyTorch, quantized)",
    }
    for key, value in report.accuracy.items():
        table.add_row(labels.get(key, key), f"{value:.2%}")
    console.print(table)
    for note in report.notes:
        console.print(f"[yellow]note[/]: {note}")
