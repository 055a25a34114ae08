"""Every protocol-error / rejected-piece reason the peer package can emit is initialised at 0."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from peer.metrics import PROTOCOL_ERROR_REASONS, REJECT_REASONS, AgentMetrics

PEER = Path(__file__).resolve().parents[2] / "peer"
RAISED = re.compile(r'(?:DecodeError|ProtocolError|protocol_error|_decode_error)\(\s*"([a-z_]+)"')
REJECTED = re.compile(r'_reject\(\s*"([a-z_]+)"')


def _found(pattern: re.Pattern[str]) -> set[str]:
    return {m for f in PEER.rglob("*.py") for m in pattern.findall(f.read_text())}


@pytest.mark.timeout(10)
def test_every_reason_in_the_sources_is_listed() -> None:
    raised = _found(RAISED)
    assert {"bad_handshake", "request_flood", "not_reading", "bad_pex"} <= raised  # the scan works
    assert raised <= set(PROTOCOL_ERROR_REASONS), raised - set(PROTOCOL_ERROR_REASONS)
    rejected = _found(REJECTED)
    assert rejected and rejected <= set(REJECT_REASONS), rejected


@pytest.mark.timeout(10)
def test_reasons_start_at_zero() -> None:
    reg = CollectorRegistry()
    AgentMetrics(reg)
    for reason in PROTOCOL_ERROR_REASONS:
        assert reg.get_sample_value("meshbed_protocol_errors_total", {"reason": reason}) == 0.0
    for reason in REJECT_REASONS:
        assert reg.get_sample_value("meshbed_rejected_pieces_total", {"reason": reason}) == 0.0
