"""The board's commands: ``hwcompress serve`` (the benchmark server) and ``hwcompress
calibrate`` (its latency table)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hwcompress.cli.app import app, console, err_console
from hwcompress.errors import HwCompressError
from hwcompress.hardware.sections import SourceName


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
    from hwcompress.measure.calibrate import CalibrateConfig
    from hwcompress.measure.calibrate import calibrate as run_calibrate

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
    if prof.latency.source != SourceName.TABLE:
        console.print(
            "use it with 'latency: {source: table}' in the profile"
            + (f" (and table: {path})" if out is not None else "")
        )
