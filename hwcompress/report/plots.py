"""The report's figures (matplotlib, Agg backend, written as PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwcompress.search.candidate import Status

__all__ = ["pareto_plot", "reward_plot"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The Pareto front of (cost, accuracy) points: lower cost, higher accuracy."""
    front: list[tuple[float, float]] = []
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((cost, acc))
    return front


def pareto_plot(
    candidates: list[dict[str, Any]],
    teacher: dict[str, Any],
    best: dict[str, Any] | None,
    metric: str,
    label: str,
    path: Path,
    *,
    log_x: bool = False,
    bound: float | None = None,
) -> Path:
    """Validation accuracy against ``metric`` for every candidate; feasible ones filled,
    infeasible ones as crosses, the feasible Pareto front as a line, teacher and product
    marked; the latency-matched seeds (Torch-Pruning's practice) as diamonds, and ``bound``
    (the run's target on ``metric``) as a vertical line.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    ok = [c for c in candidates if c.get("status") == Status.OK and metric in c.get("metrics", {})]

    def group(c: dict[str, Any]) -> str:
        if c.get("method") == "baseline":
            return "seeds at the latency budget" if "latency" in c.get("label", "") else "seeds"
        return str(c["stage"])

    stages = sorted({group(c) for c in ok})
    colours = plt.get_cmap("tab10")
    for i, stage in enumerate(stages):
        feas = [c for c in ok if group(c) == stage and c["feasible"]]
        infeas = [c for c in ok if group(c) == stage and not c["feasible"]]
        matched = stage == "seeds at the latency budget"
        ax.scatter(
            [c["metrics"][metric] for c in feas],
            [100 * c["metrics"]["val_accuracy"] for c in feas],
            s=60 if matched else 22,
            marker="D" if matched else "o",
            color=colours(i),
            edgecolors="black" if matched else "none",
            label=f"{stage} (feasible)",
        )
        if infeas:
            ax.scatter(
                [c["metrics"][metric] for c in infeas],
                [100 * c["metrics"]["val_accuracy"] for c in infeas],
                s=26,
                marker="x",
                color=colours(i),
                label=f"{stage} (violates the profile)",
            )
    front = _front(
        [(c["metrics"][metric], 100 * c["metrics"]["val_accuracy"]) for c in ok if c["feasible"]]
    )
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), color="grey", lw=1, ls="--", label="Pareto front")
    t_metrics = teacher.get("metrics", {})
    if metric in t_metrics:
        ax.scatter(
            [t_metrics[metric]],
            [100 * teacher["val_accuracy"]],
            marker="*",
            s=180,
            color="black",
            label="teacher",
        )
    if best is not None and metric in best.get("metrics", {}):
        ax.scatter(
            [best["metrics"][metric]],
            [100 * best["metrics"]["val_accuracy"]],
            s=140,
            facecolors="none",
            edgecolors="red",
            linewidths=2,
            label="product",
        )
    if bound is not None:
        ax.axvline(bound, color="red", lw=1, ls=":", label=f"target ({bound:.3g})")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def reward_plot(episodes: list[dict[str, Any]], path: Path) -> Path:
    """Mean reward per episode, one line per stage, in the order the stages ran."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    offset = 0
    stages: list[str] = []
    for rec in episodes:
        if rec["stage"] not in stages:
            stages.append(rec["stage"])
    for stage in stages:
        recs = sorted((r for r in episodes if r["stage"] == stage), key=lambda r: r["episode"])
        xs = [offset + r["episode"] + 1 for r in recs]
        ax.plot(xs, [r["mean_reward"] for r in recs], marker="o", ms=3, label=stage)
        offset = max(xs, default=offset)
    ax.set_xlabel("episode (stages one after another)")
    ax.set_ylabel("mean reward")
    ax.grid(alpha=0.3)
    if stages:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
