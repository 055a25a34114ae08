"""`meshbed validate` summary details and the inventory-file hint (in-process CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main as cli_main

INVENTORY = Path(__file__).resolve().parents[1] / "data" / "inventories" / "lab.yaml"


def test_summary_shows_jitter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = tmp_path / "j.yaml"
    topo.write_text("name: j\ngroups:\n  a: {count: 2, link: {latency: 20ms, jitter: 5ms}}\n")
    assert cli_main(["validate", str(topo)]) == 0
    assert "latency 20ms ±5ms jitter" in capsys.readouterr().out


def test_an_inventory_is_recognised(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["validate", str(INVENTORY)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{INVENTORY}:")
    assert "this is a device inventory, not a topology" in err and "meshbed devices check" in err


def test_help_names_exit_codes_home_and_the_topology_docs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out and "MESHBED_HOME" in out and "docs/topology.md" in out
    with pytest.raises(SystemExit):
        cli_main(["up", "--help"])
    out = capsys.readouterr().out
    assert "meshbed play NAME" in out and "meshbed report NAME" in out
