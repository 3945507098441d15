"""The run report: written at the end of every search, and by ``hwcompress report``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from hwcompress.cli import app
from hwcompress.search import SearchConfig, run_search


def test_search_writes_a_report_whose_images_exist(tiny_search):
    run_search(SearchConfig(**tiny_search))
    report = Path(tiny_search["out"]) / "report"
    page = (report / "index.html").read_text()
    names = {"pareto_latency.png", "pareto_weight_bytes.png", "reward_curve.png"}
    for name in names:
        png = report / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'data-file="{name}"' in page and f'href="{name}"' in page
    # the images are embedded too: the page stands alone
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', page)) == 3
    for section in (
        "Device profile",
        "Which constraints bound",
        "Pareto",
        "architecture",
        "kernels",
        "product",
    ):
        assert section in page
    results = json.loads((Path(tiny_search["out"]) / "results.json").read_text())
    assert results["device"]["name"] == "x86_host"
    activity = {r["name"]: r for r in results["constraint_activity"]}
    assert set(activity) >= {"latency_budget", "bit_widths_supported"}
    assert activity["bit_widths_supported"]["status"] in ("never bound", "binds")
    assert "this host" in results["teacher"]["latency_where"]
    assert "removed" in page or "kept" in page  # the per-layer table
    summary = (report / "summary.md").read_text()
    assert "| parameters |" in summary and "![" in summary
    # both lead with what a user judges by: size, speed here, the change on test
    lead = results["summary"]["headline"]
    assert "points on test" in lead
    assert summary.split("\n")[2].startswith(f"**{lead}**")
    assert f"<b>{lead}</b>" in page.replace("&#x27;", "'")


def test_report_command(tiny_search, tmp_path, monkeypatch, capsys):
    from tests.test_cli import run_main

    run_search(SearchConfig(**tiny_search))
    (Path(tiny_search["out"]) / "report" / "index.html").unlink()
    res = CliRunner().invoke(app, ["report", tiny_search["out"]])
    assert res.exit_code == 0, res.output
    assert (Path(tiny_search["out"]) / "report" / "index.html").is_file()
    code, _, err = run_main(monkeypatch, capsys, "report", str(tmp_path / "nothing"))
    assert code == 2 and "--out folder" in err


def test_the_page_renders_in_a_headless_browser(tiny_search, tmp_path):
    import shutil
    import subprocess

    import pytest

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    run_search(SearchConfig(**tiny_search))
    page = Path(tiny_search["out"]) / "report" / "index.html"
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1100,2400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a page, not a blank


def test_a_board_measured_on_this_host_is_labelled_and_warned(tiny_search, capsys):
    from rich.console import Console

    from hwcompress.search_cli import render_result

    settings = {**tiny_search, "profile": "jetson_nano", "episodes": 1, "rollouts": 1}
    result = run_search(SearchConfig(**settings))
    warning = result.teacher["latency_warning"]
    assert "not on the jetson_nano" in warning and "hwcompress serve" in warning
    page = (Path(settings["out"]) / "report" / "index.html").read_text()
    assert "NVIDIA Jetson Nano" in page  # the device's description and figures
    assert "Warning:" in page and "not on the jetson_nano" in page
    render_result(Console(width=200), result)
    out = capsys.readouterr().out
    assert "warning:" in out and "not on the jetson_nano" in out
