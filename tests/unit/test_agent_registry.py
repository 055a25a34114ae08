"""An agent's metrics registry is built fresh where it is needed (``new_registry``), with no
`_created` series; importing the metrics module changes nothing process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from peer.metrics import AgentMetrics, new_registry

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(20)
def test_importing_the_metrics_module_leaves_created_series_alone() -> None:
    code = ("import peer.metrics\nfrom prometheus_client import metrics\n"
            "print(metrics._use_created)\n")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_DISABLE_CREATED_SERIES"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=20)
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.timeout(10)
def test_each_registry_is_fresh_and_has_no_created_series() -> None:
    a, b = new_registry(), new_registry()
    assert a is not b
    AgentMetrics(a, node="n0")
    AgentMetrics(b, node="n1")  # a shared registry would refuse the second (duplicate series)
    text = generate_latest(a).decode()
    assert "meshbed_protocol_errors_total{" in text  # the counters are there ...
    assert "_created" not in text  # ... without a `_created` twin each
