"""The ``hwcompress`` command line: parse options, call one library function, render.

The core never sees Typer objects. Every :class:`~hwcompress.errors.HwCompressError` becomes
one red line on stderr and exit code 2.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hwcompress.cli_options import (
    OptionSpec,
    config_values,
    dataclass_options,
    flag_names,
    option_name,
)
from hwcompress.errors import ConfigError, HwCompressError

app = typer.Typer(
    name="hwcompress",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Hardware-aware neural-network compression: search, distil, quantize, export.",
)
profile_app = typer.Typer(no_args_is_help=True, help="List and inspect device profiles.")
app.add_typer(profile_app, name="profile")
teacher_app = typer.Typer(no_args_is_help=True, help="Train and inspect teachers.")
app.add_typer(teacher_app, name="teacher")

console = Console()
err_console = Console(stderr=True)


@profile_app.command("list")
def profile_list() -> None:
    """List the built-in device profiles."""
    from hwcompress.hardware.profile import list_profiles, load_profile

    table = Table(title="Device profiles")
    table.add_column("name", no_wrap=True, style="bold")
    for col in ("device", "latency", "budget", "weight bits"):
        table.add_column(col)
    for name, path in list_profiles().items():
        p = load_profile(path)
        table.add_row(
            name,
            p.description,
            p.latency.source,
            f"{p.latency.budget_ms:g} ms",
            ",".join(map(str, p.bits.weight)),
        )
    console.print(table)


@profile_app.command("show")
def profile_show(name: Annotated[str, typer.Argument(help="Profile name or YAML path.")]) -> None:
    """Show one device profile and its constraint matrix."""
    from hwcompress.fmt import human_bytes
    from hwcompress.hardware import ConstraintMatrix, load_profile

    p = load_profile(name)
    table = Table(title=f"{p.name}: {p.description}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for prec, gops in p.compute.peak_gops.items():
        table.add_row(f"peak {prec}", f"{gops:g} GOP/s")
    table.add_row("memory bandwidth", f"{p.memory.bandwidth_gbps:g} GB/s")
    table.add_row("RAM", human_bytes(p.memory.ram_bytes))
    table.add_row("storage", human_bytes(p.memory.storage_bytes))
    table.add_row("weight bits", ", ".join(map(str, p.bits.weight)))
    table.add_row("activation bits", ", ".join(map(str, p.bits.activation)))
    table.add_row("providers", ", ".join(p.runtime.providers))
    table.add_row("threads", str(p.runtime.threads))
    table.add_row("latency source", p.latency.source)
    table.add_row("file", str(p.path))
    console.print(table)
    matrix = ConstraintMatrix.from_profile(p)
    rows = Table(title="Constraint rows (A·x ≤ b)")
    rows.add_column("row", no_wrap=True)
    rows.add_column("constraint")
    for name_, desc in zip(matrix.rows, matrix.descriptions, strict=True):
        rows.add_row(name_, desc)
    console.print(rows)


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


@teacher_app.command("train")
def teacher_train(
    teacher: Annotated[
        str, typer.Option(help="builtin:NAME, torchvision:NAME or module.path:factory.")
    ] = "builtin:vgg",
    dataset: Annotated[
        str,
        typer.Option(
            help="digits, mnist, fashion_mnist, cifar10, cifar100, svhn or imagefolder:PATH."
        ),
    ] = "digits",
    data_dir: Annotated[
        str | None,
        typer.Option(help="Folder holding torchvision datasets (default $HWCOMPRESS_DATA_DIR)."),
    ] = None,
    download: Annotated[bool, typer.Option(help="Allow downloading the dataset.")] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-3,
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path, typer.Option(help="Checkpoint to write.")] = Path("teacher.pt"),
    device: Annotated[
        str, typer.Option(help="Where training runs: auto, cpu, cuda or cuda:N.")
    ] = "auto",
) -> None:
    """Train a teacher on a dataset and save it (weights + accuracy) as a checkpoint."""
    from hwcompress.data import DataConfig, load_data
    from hwcompress.data.teachers import build_teacher, save_checkpoint
    from hwcompress.train import TrainConfig, evaluate, train_classifier

    data = load_data(
        DataConfig(
            name=dataset, data_dir=data_dir, download=download, batch_size=batch_size, seed=seed
        )
    )
    model = build_teacher(teacher, data.num_classes, data.in_channels, data.image_shape[-1])
    from hwcompress.train.device import resolve_device

    config = TrainConfig(epochs=epochs, lr=lr, seed=seed, device=str(resolve_device(device)))
    with console.status(f"Training {teacher} on {dataset}") as status:

        def on_epoch(epoch: int, loss: float, acc: float) -> None:
            status.update(
                f"Training {teacher} on {dataset}: epoch {epoch + 1}/{epochs}, "
                f"loss {loss:.4f}, validation accuracy {acc:.2%}"
            )

        train_classifier(model, data, config, on_epoch=on_epoch)
    acc = {"val": evaluate(model, data.val), "test": evaluate(model, data.test)}
    save_checkpoint(
        model,
        out,
        {"spec": teacher, "dataset": dataset, "accuracy": acc, "train": config.to_dict()},
    )
    console.print(
        f"{teacher} on {dataset}: validation {acc['val']:.2%}, test {acc['test']:.2%} → {out}"
    )


def _stage_list(text: str) -> tuple[str, ...]:
    """``--stages``: ``removal,shrinkage``."""
    stages = tuple(s.strip() for s in text.split(",") if s.strip())
    if not stages:
        raise ConfigError("{stages}: give at least one stage, e.g. removal,shrinkage")
    return stages


def _seed_ladder(text: str) -> tuple[float, ...]:
    """``--seeds``: ``2,4,8`` or ``none``."""
    if text.strip().lower() in ("none", "0", ""):
        return ()
    try:
        return tuple(float(x.rstrip("xX")) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(
            f"{{seed_ratios}}: cannot read {text!r}; give reductions such as 2,4,8,16,32 or 'none'"
        ) from None


#: How SearchConfig's fields differ on the command line; every other field is --field-name.
SEARCH_OPTIONS = {
    "profile": OptionSpec(short="-p", help="Device profile name or YAML path."),
    "stages": OptionSpec(
        parse=_stage_list,
        metavar="STAGE,...",
        help="Comma-separated stages to run in order (default: removal,shrinkage; drl-prune: "
        "channels,kernels,quantization).",
    ),
    "target": OptionSpec(
        repeatable=True,
        metavar="METRIC=VALUE",
        help="A target, repeatable: params=10x, weight_bytes=64KiB, macs=2M, latency_ms=0.5. "
        "Adds rows to the profile's constraints; the reward becomes accuracy among students "
        "that meet them.",
    ),
    "seed_ratios": OptionSpec(
        flag="seeds",
        parse=_seed_ladder,
        metavar="R,...",
        help="Seed ladder: parameter reductions tried first with uniform width scaling and "
        "global L1 pruning (default: 2,4,8,16,24,32,48; 'none': no seeds).",
    ),
}


def _search_flag(field: str) -> str:
    """The command-line name of a SearchConfig field (or of ``resume``)."""
    from hwcompress.search.config import SearchConfig

    return flag_names(SearchConfig, SEARCH_OPTIONS).get(field) or option_name(field)


def search(*, resume: bool = False, **options: Any) -> None:
    """Search for a student that fits the device (N2N: removal, then shrinkage; or drl-prune).

    Every option but --resume is a field of SearchConfig; hwcompress.compress() takes the same
    settings by their field names.
    """
    from hwcompress.search import SearchConfig, load_search_config, run_search
    from hwcompress.search_cli import RichSearchReporter, render_result

    overrides = config_values(SearchConfig, options, SEARCH_OPTIONS)
    out = overrides.setdefault("out", SearchConfig.__dataclass_fields__["out"].default)
    config = load_search_config(out, overrides) if resume else SearchConfig(**overrides)
    try:
        with RichSearchReporter(console) as reporter:
            result = run_search(config, resume=resume, reporter=reporter)
    except KeyboardInterrupt:
        err_console.print(
            f"[bold yellow]interrupted[/]: every finished candidate is in "
            f"{out}/journal.jsonl; continue with: hwcompress search --profile "
            f"{config.profile} --out {out} --resume"
        )
        raise typer.Exit(130) from None
    render_result(console, result)
    if result.best is None:
        raise typer.Exit(1)


def _register_search() -> None:
    """Registers :func:`search` with one option per SearchConfig field, plus ``--resume``."""
    from hwcompress.search.config import SearchConfig

    resume = inspect.Parameter(
        "resume",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--resume", help="Continue the run in --out.", show_default=False)
        ],
    )
    params = [*dataclass_options(SearchConfig, SEARCH_OPTIONS), resume]
    search.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    search.__annotations__ = {p.name: p.annotation for p in params}
    app.command("search")(search)


_register_search()


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 to accept other machines.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8765,
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding the bearer token.")
    ] = "HWCOMPRESS_TOKEN",
    max_mb: Annotated[float, typer.Option(min=0.001, help="Largest model accepted, MiB.")] = 64.0,
    queue: Annotated[
        int, typer.Option(min=0, help="Requests that may wait behind the running one.")
    ] = 4,
) -> None:
    """Run the benchmark server on the board: measures ONNX models sent by search and bench."""
    import os

    from hwcompress.serve import ServeConfig, serve_forever

    token = os.environ.get(token_env, "")
    if not token:
        raise HwCompressError(
            f"${token_env} is not set; export a long random token first, e.g. "
            f"export {token_env}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
            "and give the same value to the machine that runs the search"
        )
    config = ServeConfig(
        token=token, host=host, port=port, max_bytes=int(max_mb * 2**20), max_queue=queue
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]note[/]: listening on {host}: the token and models travel as plain HTTP; "
            "use a trusted network (or a TLS proxy in front)"
        )
    try:
        serve_forever(config, log=console.print)
    except OSError as err:
        raise HwCompressError(
            f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port"
        ) from None


@app.command()
def calibrate(
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Device profile name or YAML path.")
    ],
    teacher: Annotated[
        str, typer.Option(help="The teacher whose students will be searched.")
    ] = "builtin:vgg",
    dataset: Annotated[str, typer.Option(help="Dataset (gives the input shape).")] = "digits",
    data_dir: Annotated[str | None, typer.Option(help="Folder of torchvision datasets.")] = None,
    students: Annotated[
        int, typer.Option(min=1, help="Random students whose layers are measured.")
    ] = 20,
    fit_students: Annotated[
        int,
        typer.Option(
            min=1,
            help="Students measured whole for the kernel-level fit (its tree correction "
            "needs about 200; fewer than 30 fit the linear part alone).",
        ),
    ] = 200,
    check: Annotated[
        int, typer.Option(min=0, help="Further students measured whole to check the table.")
    ] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the random students.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Table file (default: <profile>.latency.json beside the profile)."),
    ] = None,
) -> None:
    """Measure a per-layer latency table on the board (or here) for the 'table' source."""
    from hwcompress.data import DataConfig, load_data
    from hwcompress.data.teachers import build_teacher
    from hwcompress.hardware import load_profile
    from hwcompress.measure.table import CalibrateConfig
    from hwcompress.measure.table import calibrate as run_calibrate

    prof = load_profile(profile)
    data = load_data(DataConfig(name=dataset, data_dir=data_dir))
    model = build_teacher(teacher, data.num_classes, data.in_channels, data.image_shape[-1])
    path = out or prof.latency_table_path()
    where = prof.latency.url or "this machine"
    console.print(f"calibrating {prof.name} on {where}: {students} students, {check} to check")
    table, rows = run_calibrate(
        model.eval(),
        data.input_shape,
        prof,
        CalibrateConfig(students=students, fit_students=fit_students, check=check, seed=seed),
        progress=console.print,
    )
    table.save(path)
    chk = table.meta.get("check", {})
    console.print(f"[bold]latency table[/] written to {path} ({len(table.entries)} layers)")
    if rows:
        console.print(
            f"check on {chk['models']} students: {chk['within']:.0%} of predictions within "
            f"±10% (median error {chk['median_abs_error']:.1%}, worst {chk['max_abs_error']:.1%})"
        )
    if prof.latency.source != "table":
        console.print(
            "use it with 'latency: {source: table}' in the profile"
            + (f" (and table: {path})" if out is not None else "")
        )


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


def main() -> None:
    """Console-script entry point.

    Typer reports usage errors itself (exit code 2); hwcompress' own errors become one red
    line and exit code 2 as well, never a traceback.
    """
    try:
        app()
    except HwCompressError as err:
        # settings are named by their flags here (the Python API names the fields)
        text = err.render(_search_flag) if isinstance(err, ConfigError) else str(err)
        err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
