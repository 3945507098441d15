"""Rendering for ``hwcompress search``: a live progress line and the final comparison table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hwcompress.fmt import human_bytes, human_count, human_metric
from hwcompress.search.candidate import Candidate, Status
from hwcompress.search.progress import SearchReporter
from hwcompress.search.runner import SearchResult


class RichSearchReporter(SearchReporter):
    """Shows stage, episode, candidates, best reward, best student and feasibility."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[best]}"),
            console=console,
        )
        self.task: Any = None

    def __enter__(self) -> RichSearchReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def message(self, text: str) -> None:
        self.progress.console.print(f"[dim]{text}[/]")

    def stage(self, stage: str, episodes: int, rollouts: int, start_episode: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(
            f"{stage}: episode {start_episode + 1}/{episodes}",
            total=(episodes - start_episode) * rollouts,
            best="",
        )
        self.episodes = episodes

    def seeds(self, stage: str, count: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(f"{stage}: seeds", total=count, best="")

    def candidate(self, cand: Candidate, best: Candidate | None, cached: bool) -> None:
        self.progress.update(self.task, advance=1, best=_best_text(best))

    def episode(self, stage: str, episode: int, mean_reward: float, best: Candidate | None) -> None:
        self.progress.update(
            self.task,
            description=f"{stage}: episode "
            f"{min(episode + 2, self.episodes)}/{self.episodes} "
            f"(last mean reward {mean_reward:+.3f})",
        )


def _best_text(best: Candidate | None) -> str:
    if best is None:
        return "no student yet"
    flag = "[green]feasible[/]" if best.feasible else "[red]infeasible[/]"
    return (
        f"best R={best.reward:.3f} {human_count(best.metrics.get('params', 0))} params "
        f"{best.metrics.get('val_accuracy', 0):.2%} {flag}"
    )


def nothing_found(result: SearchResult) -> str:
    """Why a run hands back no student, and what to do about it."""
    failed = [c for c in result.candidates if c.status != Status.OK]
    if not failed:
        why = (
            "the time budget ran out before the first candidate finished"
            if result.interrupted_by_budget
            else "no candidate was evaluated"
        )
        return (
            f"no student: {why}; give more minutes (--budget-minutes), or continue this run "
            f"with --resume --out {result.out}"
        )
    return (
        f"no student: all {len(failed)} candidates failed, e.g. {failed[0].reason}; every "
        "reason is in results.json"
    )


def render_result(console: Console, result: SearchResult) -> None:
    """Prints teacher vs best student and each constraint's slack."""
    t = result.teacher["metrics"]
    best = result.best
    table = Table(title=f"Teacher vs best student ({result.out})")
    table.add_column("", style="bold")
    table.add_column("teacher", justify="right")
    table.add_column("best student", justify="right")
    b = best.metrics if best else {}
    rows = [
        ("parameters", "params", human_count),
        ("weight bytes", "weight_bytes", human_bytes),
        ("MACs", "macs", human_count),
        ("peak activation", "peak_activation_bytes", human_bytes),
        ("latency", "latency_ms", lambda v: f"{v:.4f} ms"),
    ]
    for label, key, fmt in rows:
        table.add_row(label, fmt(t[key]), fmt(b[key]) if key in b else "—")
    table.add_row(
        "val accuracy",
        f"{result.teacher['val_accuracy']:.2%}",
        f"{b['val_accuracy']:.2%}" if b else "—",
    )
    if "val_accuracy_onnxruntime" in b:
        table.add_row(
            "val accuracy, integer model in onnxruntime",
            "",
            f"{b['val_accuracy_onnxruntime']:.2%}",
        )
    final = result.final_distillation
    if final:
        table.add_row(
            f"val accuracy after {final['epochs']} more epochs",
            "",
            f"{final['val_accuracy']:.2%}",
        )
    if best is not None:
        table.add_row("compression", "1×", f"{b['compression']:.1f}×")
        table.add_row("reward", "", f"{best.reward:.4f}")
        for row, slack in best.slack.items():
            metric = (
                next((r["metric"] for r in result.teacher["constraints"] if r["name"] == row), None)
                or "value"
            )
            t_slack = next(r["slack"] for r in result.teacher["constraints"] if r["name"] == row)
            table.add_row(
                f"slack {row}",
                human_metric(metric, t_slack),
                ("[green]" if slack >= 0 else "[red]") + human_metric(metric, slack),
            )
    console.print(table)
    if result.teacher.get("latency_where"):
        console.print(f"latency: {result.teacher['latency_where']}")
    if result.teacher.get("latency_warning"):
        console.print(f"[bold yellow]warning:[/] {result.teacher['latency_warning']}")
    chosen = (result.best_info or {}).get("chosen")
    if best is not None and chosen:
        label = f" ({best.label})" if best.label else ""
        console.print(
            f"product from the {best.stage} stage, {best.method}{label}, trained to fidelity "
            f"{best.fidelity}: {chosen['reason']}"
        )
    check = (result.best_info or {}).get("latency_check")
    if check and "error" not in check:
        console.print(
            f"latency measured for real ({check['source']}): teacher {check['teacher_ms']:.4f} ms "
            f"(table {check['teacher_predicted_ms']:.4f}), best {check['best_ms']:.4f} ms "
            f"(table {check['best_predicted_ms']:.4f})"
        )
    elif check:
        console.print(f"[yellow]latency could not be re-measured[/]: {check['error']}")
    if best is None:
        console.print(f"[red]{nothing_found(result)}[/]")
        console.print(f"results: {result.results_path}")
        return
    if not best.feasible:
        console.print(
            "[bold red]no student met every constraint[/]; the best one shown "
            "violates the red rows. Loosen the profile's budgets or run longer."
        )
    console.print(f"results: {result.results_path}; best student: {result.out}/best/")
    headline = result.summary or {}
    if headline:
        where = headline.get("latency_where") or "this device"
        console.print(
            f"[bold]{headline['headline']}[/] (latency measured on {where}; the search ranked "
            "by validation accuracy"
            + (
                f", {headline['val_change_points']:+.2f} points there"
                if headline.get("test_change_points") is not None
                else ""
            )
            + ")"
        )
        console.print(
            f"deploy {result.out}/{headline['deploy']}, or as int8: {headline['export_int8']}"
        )
