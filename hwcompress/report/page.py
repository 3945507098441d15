"""``hwcompress report RUN_DIR``: a self-contained HTML page and a Markdown summary of a run.

The page shows the device profile and its constraints, the teacher against each stage's best
student and the product, Pareto plots of accuracy against latency and against weight bytes
over every candidate (feasible and not), the reward curve, the product's architecture layer by
layer (kept or removed, width, kernel, bits) and the onnxruntime kernels that ran. The plots are
PNG files in ``RUN_DIR/report/`` and are also embedded in the page, so it can be mailed alone.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwcompress.errors import HwCompressError
from hwcompress.report.tables import (
    CSS,
    ROWS,
    architecture_rows,
    device_summary_rows,
    fmt_metric,
    html_table,
    md_table,
)
from hwcompress.search.candidate import Status

__all__ = ["Report", "write_report"]


@dataclass(frozen=True)
class Report:
    """The files a report wrote."""

    html: Path
    markdown: Path
    images: tuple[Path, ...]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise HwCompressError(
            f"{path}: missing; pass the --out folder of a finished 'hwcompress search' run"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HwCompressError(f"{path}: not valid JSON ({err})") from None


def write_report(run_dir: str | Path) -> Report:
    """Writes ``RUN_DIR/report/index.html``, ``summary.md`` and the PNG plots.

    Raises:
        HwCompressError: If ``run_dir`` is not a finished search run.
    """
    from hwcompress.report.plots import pareto_plot, reward_plot
    from hwcompress.search.journal import Journal

    run = Path(run_dir)
    if not run.is_dir():
        raise HwCompressError(f"{run}: no such folder; pass the --out folder of a search run")
    results = _read_json(run / "results.json")
    config = _read_json(run / "config.json") if (run / "config.json").is_file() else {}
    spec = _read_json(run / "spec.json") if (run / "spec.json").is_file() else {"layers": []}
    episodes = Journal(run / "journal.jsonl").episodes()
    out = run / "report"
    out.mkdir(exist_ok=True)
    teacher, best = results["teacher"], results.get("best")
    candidates = results.get("candidates", [])
    latency_bound = next(
        (
            row["bound"]
            for row in teacher.get("constraints", [])
            if row.get("name") == "target_latency_ms"
        ),
        None,
    )
    images = (
        pareto_plot(
            candidates,
            teacher,
            best,
            "latency_ms",
            "latency (ms), measured",
            out / "pareto_latency.png",
            bound=latency_bound,
        ),
        pareto_plot(
            candidates,
            teacher,
            best,
            "weight_bytes",
            "weight bytes",
            out / "pareto_weight_bytes.png",
            log_x=True,
        ),
        reward_plot(episodes, out / "reward_curve.png"),
    )
    captions = (
        "Validation accuracy against measured latency, every candidate (the latency-matched "
        "seeds are pruning as a practitioner would do it: scaled until fast enough); "
        "'hwcompress export RUN --pick latency_ms=…' exports the best student on the front "
        "under any latency",
        "Validation accuracy against weight bytes (log scale), every candidate",
        "Mean reward per episode",
    )

    device_rows = device_summary_rows(results.get("device") or {})
    where = teacher.get("latency_where", "")
    warning = teacher.get("latency_warning", "")
    activity_rows = [
        [
            r["name"],
            r["status"],
            str(r["violated"]),
            "—" if r.get("tightest") is None else f"{100 * r['tightest']:.1f}%",
        ]
        for r in results.get("constraint_activity", [])
    ]
    activity_header = ["row", "over the run", "students it rejected", "smallest slack (of bound)"]
    # profile and constraints
    profile_rows = [
        [r["name"], r.get("description", ""), fmt_metric(r.get("metric") or "", r.get("bound"))]
        for r in teacher.get("constraints", [])
    ]
    # teacher vs stage bests vs product
    columns = [("teacher", teacher.get("metrics", {}) | {"val_accuracy": teacher["val_accuracy"]})]
    for stage, cand in results.get("stages", {}).items():
        columns.append((f"best {stage}", cand.get("metrics", {})))
    if best is not None:
        columns.append(("product", best.get("metrics", {})))
    compare = [
        [label, *(fmt_metric(key, col.get(key)) for _, col in columns)]
        for key, label in ROWS
        if key != "val_accuracy_onnxruntime" or any(key in col for _, col in columns)
    ]
    if best is not None and best.get("test_accuracy") is not None:
        compare.append(
            [
                "test accuracy",
                fmt_metric("test_accuracy", teacher.get("test_accuracy")),
                *(["—"] * (len(columns) - 2)),
                fmt_metric("test_accuracy", best["test_accuracy"]),
            ]
        )
    arch = architecture_rows(spec, best["genome"]) if best else []
    arch_rows = [
        [
            a["layer"],
            a["kind"],
            a["teacher"],
            "kept" if a["kept"] else "removed",
            a["width"],
            a["kernel"],
            a["bits"],
        ]
        for a in arch
    ]
    arch_header = ["layer", "kind", "teacher", "kept", "width", "kernel", "weight bits"]
    kernels = (best or {}).get("kernels", {})
    kernel_rows = [[k, str(n)] for k, n in sorted(kernels.items())]
    slack_rows = [
        [
            r["name"],
            fmt_metric(r.get("metric") or "", r.get("value")),
            fmt_metric(r.get("metric") or "", r.get("bound")),
            "ok" if r.get("slack", 0) >= 0 else "VIOLATED",
        ]
        for r in (best or {}).get("constraints", [])
    ]
    n_ok = sum(c.get("status") == Status.OK for c in candidates)
    n_feasible = sum(bool(c.get("feasible")) for c in candidates)
    headline = (
        f"{len(candidates)} candidates ({n_ok} evaluated, {n_feasible} feasible), method "
        f"{results.get('method', 'n2n')}, seed {results.get('seed')}, profile "
        f"{results.get('profile')}"
    )
    if best is not None:
        headline += (
            f". Product: {fmt_metric('compression', best['metrics'].get('compression'))} fewer "
            "parameters, "
            f"{fmt_metric('val_accuracy', best['metrics'].get('val_accuracy'))} validation "
            f"accuracy (teacher {fmt_metric('val_accuracy', teacher['val_accuracy'])}), latency "
            f"{fmt_metric('latency_ms', best['metrics'].get('latency_ms'))} (teacher "
            f"{fmt_metric('latency_ms', teacher.get('metrics', {}).get('latency_ms'))})."
        )
        chosen = best.get("chosen") or {}
        if chosen.get("reason"):
            origin = f"{best['stage']} stage, {best['method']}"
            if best.get("label"):
                origin += f" ({best['label']})"
            headline += f" It comes from the {origin}: {chosen['reason']}."
    n_seeds = sum(c.get("method") == "baseline" for c in candidates)
    if n_seeds:
        headline += (
            f" {n_seeds} seeds (uniform width scaling and global L1 pruning, every layer kept; "
            "uniform bit-widths) were evaluated before any policy sample."
        )

    def figure(img: Path, caption: str) -> str:
        data = base64.b64encode(img.read_bytes()).decode()
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}" '
            f'data-file="{img.name}"><figcaption>{html.escape(caption)} '
            f'(<a href="{img.name}">{img.name}</a>)</figcaption></figure>'
        )

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>hwcompress report — "
        f"{html.escape(str(results.get('profile')))}</title><style>{CSS}</style></head><body>",
        "<h1>hwcompress search report</h1>",
        *(
            [
                f"<p class='lead'><b>{html.escape(lead['headline'])}</b> (latency measured on "
                f"{html.escape(lead.get('latency_where') or 'this device')}; the search ranked "
                f"by validation accuracy, {lead['val_change_points']:+.2f} points there). "
                f"Deploy <code>{html.escape(lead['deploy'])}</code>, or as int8: "
                f"<code>{html.escape(lead['export_int8'])}</code>.</p>"
            ]
            if (lead := results.get("summary"))
            else []
        ),
        f"<p>{html.escape(headline)}</p>",
        *(
            [
                "<p>The teacher was adapted to the input size: "
                + html.escape("; ".join(teacher["adaptations"]))
                + ".</p>"
            ]
            if teacher.get("adaptations")
            else []
        ),
        "<h2>Device</h2>",
        html_table(["", ""], device_rows) if device_rows else "<p>—</p>",
        f"<p>Latency: {html.escape(where)}.</p>" if where else "",
        f"<p class='bad'><b>Warning:</b> {html.escape(warning)}.</p>" if warning else "",
        "<h2>Device profile and constraints (A·x ≤ b)</h2>",
        html_table(["row", "constraint", "bound"], profile_rows),
        "<h2>Which constraints bound</h2>",
        html_table(activity_header, activity_rows) if activity_rows else "<p>—</p>",
        "<h2>Teacher, each stage's best and the product</h2>",
        html_table(["", *(label for label, _ in columns)], compare),
        "<h2>Constraint slack of the product</h2>",
        html_table(["row", "value", "bound", ""], slack_rows) if slack_rows else "<p>—</p>",
        "<h2>Pareto plots</h2>",
        figure(images[0], captions[0]),
        figure(images[1], captions[1]),
        "<h2>Reward per episode</h2>",
        figure(images[2], captions[2]),
        "<h2>The product's architecture, layer by layer</h2>",
        html_table(arch_header, arch_rows) if arch_rows else "<p>—</p>",
        "<h2>onnxruntime kernels that ran (product)</h2>",
        html_table(["kernel", "count"], kernel_rows) if kernel_rows else "<p>—</p>",
        "<h2>Settings</h2>",
        f"<pre>{html.escape(json.dumps(config, indent=1))}</pre>",
        "</body></html>",
    ]
    page = out / "index.html"
    page.write_text("\n".join(parts), encoding="utf-8")
    lead = results.get("summary")
    md = [
        "# hwcompress search report",
        "",
        *(
            [
                f"**{lead['headline']}** (latency measured on "
                f"{lead.get('latency_where') or 'this device'}; the search ranked by validation "
                f"accuracy, {lead['val_change_points']:+.2f} points there). Deploy "
                f"`{lead['deploy']}`, or as int8: `{lead['export_int8']}`.",
                "",
            ]
            if lead
            else []
        ),
        headline,
        "",
        *([f"Latency: {where}.", ""] if where else []),
        *([f"**Warning:** {warning}.", ""] if warning else []),
        "## Device",
        "",
        md_table(["", ""], device_rows) if device_rows else "—",
        "",
        "## Which constraints bound",
        "",
        md_table(activity_header, activity_rows) if activity_rows else "—",
        "",
        "## Teacher, each stage's best and the product",
        "",
        md_table(["", *(label for label, _ in columns)], compare),
        "",
        "## The product's architecture",
        "",
        md_table(arch_header, arch_rows) if arch_rows else "—",
        "",
        "## Plots",
        "",
        *(f"![{c}]({img.name})" for img, c in zip(images, captions, strict=True)),
        "",
    ]
    summary = out / "summary.md"
    summary.write_text("\n".join(md), encoding="utf-8")
    return Report(page, summary, images)
