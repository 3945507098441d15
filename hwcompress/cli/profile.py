"""``hwcompress profile list|show``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hwcompress.cli.app import console, profile_app


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
