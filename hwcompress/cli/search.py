"""``hwcompress search``: one option per field of SearchConfig, plus ``--resume``."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer

from hwcompress.cli.app import app, console, err_console
from hwcompress.cli_options import (
    OptionSpec,
    config_values,
    dataclass_options,
    flag_names,
    option_name,
)
from hwcompress.errors import ConfigError


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
