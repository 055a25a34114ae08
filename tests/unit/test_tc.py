"""tc helper: parameters and the commands it issues (tc itself faked; the real kernel is
exercised in tests/integration/test_netns_backend.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Optional

import pytest

from orchestrator.backends import tc


class FakeTc:
    """Records commands; answers `tc -j qdisc show` with the configured qdiscs."""

    def __init__(self, qdiscs: Optional[list[dict]] = None, fail: str = "") -> None:
        self.calls: list[list[str]] = []
        self.qdiscs = qdiscs or []
        self.fail = fail

    async def __call__(self, cmd: Sequence[str], *, check: bool = True,
                       input: Optional[bytes] = None) -> str:
        self.calls.append(list(cmd))
        if "-j" in cmd:
            return json.dumps(self.qdiscs)
        if self.fail and check:
            raise RuntimeError(f"{' '.join(cmd)}: {self.fail}")
        return ""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTc:
    f = FakeTc()
    monkeypatch.setattr(tc, "run", f)
    return f


@pytest.mark.parametrize("rate", [64_000, 1_000_000, 10_000_000, 40_000_000, 1_000_000_000])
def test_tbf_burst_holds_a_gso_packet_and_queue_holds_the_burst(rate: int) -> None:
    burst, limit = tc.tbf_params(rate)
    assert burst >= 65536 + 1514
    assert burst >= rate // 8 * 4 // 1000
    assert limit > burst
    # the queue adds at most ~50 ms at the shaped rate beyond the burst
    assert limit - burst <= rate // 8 * tc.TBF_LATENCY_MS // 1000 + 1


def test_shape_egress_installs_tbf_under_prefix(fake: FakeTc) -> None:
    prefix = ["ip", "netns", "exec", "ns1"]
    asyncio.run(tc.shape_egress("eth0", 10_000_000, prefix=prefix))
    cmd = fake.calls[-1]
    assert cmd[:5] == [*prefix, "tc"]
    assert cmd[5:12] == ["qdisc", "replace", "dev", "eth0", "root", "handle", "1:"]
    assert "tbf" in cmd and cmd[cmd.index("rate") + 1] == "10000000bit"


def test_shape_egress_none_removes_root_qdisc(fake: FakeTc) -> None:
    asyncio.run(tc.shape_egress("veth1", None))
    assert fake.calls[-1] == ["tc", "qdisc", "del", "dev", "veth1", "root"]


def test_clear_tolerates_absent_qdisc_but_not_other_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc, "run", FakeTc(fail="Error: Cannot delete qdisc with handle of zero."))
    asyncio.run(tc.clear("eth0"))
    monkeypatch.setattr(tc, "run", FakeTc(fail="RTNETLINK answers: Operation not permitted"))
    with pytest.raises(RuntimeError, match="not permitted"):
        asyncio.run(tc.clear("eth0"))


def test_shape_egress_goes_under_netem_when_netem_is_root() -> None:
    f = FakeTc([{"kind": "netem", "handle": "1:", "root": True, "options": {}}])
    orig = tc.run
    tc.run = f  # type: ignore[assignment]
    try:
        asyncio.run(tc.shape_egress("eth0", 5_000_000))
    finally:
        tc.run = orig  # type: ignore[assignment]
    cmd = f.calls[-1]
    assert cmd[cmd.index("parent") + 1] == "1:1"
    assert "root" not in cmd


def test_negative_rate_is_refused(fake: FakeTc) -> None:
    with pytest.raises(ValueError):
        asyncio.run(tc.shape_egress("eth0", 0))


def test_netem_raises_not_implemented_without_netem(monkeypatch: pytest.MonkeyPatch,
                                                    fake: FakeTc) -> None:
    monkeypatch.setattr(tc, "probe", lambda: {"netem": False})
    with pytest.raises(NotImplementedError):
        asyncio.run(tc.netem("eth0", 10, 0, 0.0))
    assert fake.calls == []


def test_netem_keeps_the_rate_cap_as_child(monkeypatch: pytest.MonkeyPatch) -> None:
    f = FakeTc([{"kind": "tbf", "handle": "1:", "root": True, "options": {"rate": 1_250_000}}])
    monkeypatch.setattr(tc, "run", f)
    monkeypatch.setattr(tc, "probe", lambda: {"netem": True})
    asyncio.run(tc.netem("eth0", 80, 5, 0.02))
    netem_cmd = next(c for c in f.calls if "netem" in c)
    assert netem_cmd[netem_cmd.index("delay") + 1 :][:2] == ["80ms", "5ms"]
    assert netem_cmd[netem_cmd.index("loss") + 1] == "2%"
    tbf_cmd = f.calls[-1]
    assert "tbf" in tbf_cmd and tbf_cmd[tbf_cmd.index("rate") + 1] == "10000000bit"
    assert tbf_cmd[tbf_cmd.index("parent") + 1] == "1:1"


def test_run_raises_with_stderr() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(tc.run(["sh", "-c", "echo boom >&2; exit 3"]))
    assert asyncio.run(tc.run(["sh", "-c", "cat"], input=b"hi")) == "hi"
    assert asyncio.run(tc.run(["sh", "-c", "exit 1"], check=False)) == ""


def test_probe_reports_every_key() -> None:
    found = tc.probe()
    assert set(found) == {"root", "tc", "tbf", "htb", "netem", "ifb", "iptables"}
    if found["root"] and found["tc"]:
        assert found["tbf"], "tbf should work wherever tc runs as root"
