"""Dashboard JSON checks: generated files are current, panel ids unique, datasources resolve to
the provisioned uid, every variable used is defined. (The queries themselves run against a real
Prometheus in tests/integration/test_monitoring.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from orchestrator import dashboards

ROOT = Path(__file__).resolve().parents[2]
DASH_DIR = ROOT / "grafana" / "dashboards"
BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__all"}


def _files() -> list[Path]:
    return sorted(DASH_DIR.glob("*.json"))


def _provisioned_uids() -> set[str]:
    doc = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    return {d["uid"] for d in doc["datasources"]}


def test_generated_files_are_current() -> None:
    rendered = dashboards.render_all()
    assert sorted(rendered) == [p.name for p in _files()]
    for name, text in rendered.items():
        assert (DASH_DIR / name).read_text() == text, f"{name} is stale: run python -m orchestrator.dashboards"


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_dashboard_is_consistent(path: Path) -> None:
    dash = json.loads(path.read_text())
    panels = dash["panels"]
    assert panels, "a dashboard without panels"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    uids = _provisioned_uids()
    defined = {v["name"] for v in dash["templating"]["list"]}
    assert {"mesh", "group"} <= defined
    for v in dash["templating"]["list"]:
        assert v["datasource"]["uid"] in uids
    for p in panels:
        assert p["datasource"]["uid"] in uids, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] in uids
            used = set(re.findall(r"\$(\w+)", t["expr"]))
            missing = used - defined - BUILTIN_VARS
            assert not missing, f"{p['title']}: undefined variables {missing}"
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def test_every_metric_named_in_dashboards_is_documented() -> None:
    arch = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    names = set()
    for path in _files():
        for p in json.loads(path.read_text())["panels"]:
            for t in p["targets"]:
                names |= set(re.findall(r"\b(meshbed_[a-z_]+?)(?:_bucket)?\b", t["expr"]))
    agent_metrics = {n for n in names if not n.startswith("meshbed_run_") and n != "meshbed_agent_info"}
    undocumented = {n for n in agent_metrics if n not in arch}
    assert not undocumented, undocumented
