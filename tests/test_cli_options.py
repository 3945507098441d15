"""The search command's options are SearchConfig's fields; errors name fields or flags."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import typer.main

from hwcompress.cli import SEARCH_OPTIONS, app, main
from hwcompress.cli_options import config_values, field_docs, flag_names
from hwcompress.errors import ConfigError
from hwcompress.search import SearchConfig


def _search_command():
    return typer.main.get_command(app).commands["search"]  # type: ignore[attr-defined]


def test_every_field_is_an_option_and_every_option_a_field():
    params = {p.name: p for p in _search_command().params}
    fields = {f.name for f in dataclasses.fields(SearchConfig)}
    assert set(params) - {"resume"} == fields
    flags = flag_names(SearchConfig, SEARCH_OPTIONS)
    for name, param in params.items():
        if name != "resume":
            assert flags[name] in param.opts
    assert "--seeds" in params["seed_ratios"].opts and "-p" in params["profile"].opts
    assert params["profile"].required and not params["episodes"].required


def test_help_text_and_defaults_come_from_the_dataclass():
    params = {p.name: p for p in _search_command().params}
    docs = field_docs(SearchConfig)
    assert set(docs) == {f.name for f in dataclasses.fields(SearchConfig)}
    for f in dataclasses.fields(SearchConfig):
        if f.name in SEARCH_OPTIONS and SEARCH_OPTIONS[f.name].help:
            continue
        text = params[f.name].help
        assert docs[f.name].split(".")[0] in text
        if f.default not in (None, (), "", False, dataclasses.MISSING):
            assert "(default: " in text, f.name
    assert "(default: 6)" in params["episodes"].help
    assert "(default: 1,10)" in params["kernel_betas"].help
    assert "(default: 0)" in params["seed"].help  # a zero default is still shown
    assert params["seed_ratios"].help.count("(default:") == 1  # not twice


def test_command_line_values_are_read_into_field_types():
    values = config_values(
        SearchConfig,
        {
            "episodes": 3,
            "kernel_betas": "1, 10",
            "stages": "removal,shrinkage",
            "target": ["params=4x", "macs=2M"],
            "seed_ratios": "none",
            "workers": None,
        },
        SEARCH_OPTIONS,
    )
    assert values == {
        "episodes": 3,
        "kernel_betas": (1.0, 10.0),
        "stages": ("removal", "shrinkage"),
        "target": ("params=4x", "macs=2M"),
        "seed_ratios": (),
    }
    with pytest.raises(ConfigError) as info:
        config_values(SearchConfig, {"kernel_shares": "a,b"}, SEARCH_OPTIONS)
    assert info.value.field == "kernel_shares"


@pytest.mark.parametrize(
    "settings,field,python,flag",
    [
        ({"episodes": 0}, "episodes", "episodes must be at least 1", "--episodes must be"),
        ({"seed_ratios": (0.5,)}, "seed_ratios", "seed_ratios: give", "--seeds: give"),
        ({"method": "genetic"}, "method", "method: unknown method", "--method: unknown"),
        ({"kernel_steps": 0}, "kernel_steps", "kernel_steps must", "--kernel-steps must"),
        ({"device": "tpu"}, "device", "device: 'tpu'", "--device: 'tpu'"),
        (
            {"student": "x.pt"},
            "student",
            "set stages to quantization alone",
            "set --stages to quantization alone",
        ),
    ],
)
def test_errors_name_fields_in_python_and_flags_on_the_command_line(
    monkeypatch, capsys, tmp_path, settings, field, python, flag
):
    with pytest.raises(ConfigError) as info:
        SearchConfig(profile="x86_host", **settings)
    assert info.value.field == field and python in str(info.value)
    assert "--" not in str(info.value)
    ((name, value),) = settings.items()
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    option = flag_names(SearchConfig, SEARCH_OPTIONS)[name]
    argv = ["hwcompress", "search", "-p", "x86_host", option, shown, "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and flag in err and "Traceback" not in err, err


def test_a_switch_can_be_set_both_ways():
    params = {p.name: p for p in _search_command().params}
    assert "--download" in params["download"].opts
    assert "--no-download" in params["download"].secondary_opts
    assert config_values(SearchConfig, {"download": False}) == {"download": False}
    assert config_values(SearchConfig, {"download": None}) == {}
