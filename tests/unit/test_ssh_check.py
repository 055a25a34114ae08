"""`meshbed devices check` verdicts: pure functions, no devices."""

from __future__ import annotations

from orchestrator.backends.ssh.check import DeviceCheck, summary_line
from orchestrator.backends.ssh.remote import python_problem, space_problem


def test_python_older_than_3_9_is_refused_whatever_the_profile_says() -> None:
    assert python_problem((3, 7, 3), "3.7.3", "python3", (3, 6)) == "Python 3.7.3 is older than 3.9"
    assert python_problem((3, 9, 2), "3.9.2", "python3", (3, 9)) is None
    assert python_problem((3, 10, 0), "3.10.0", "python3", (3, 11)) == "Python 3.10.0 is older than 3.11"
    assert python_problem(None, "missing", "/opt/py", (3, 9)) == "no Python at '/opt/py'"


def test_free_space_below_the_content_need_is_refused() -> None:
    assert space_problem(48 << 20, "/tmp", 60 << 20) == "48.0 MiB free in /tmp < 60.0 MiB the content needs"
    assert space_problem(48 << 20, "/tmp", 48 << 20) is None
    assert space_problem(None, "/data", 0) == "cannot read free disk of /data"


def test_one_line_per_device_verdict_first() -> None:
    ok = DeviceCheck(name="pi", host="10.0.0.2:22", profile="raspberry-pi-4", reachable=True, python="3.9.2",
                     arch="aarch64", free_bytes=3 << 30, skew_seconds=0.012, detach="setsid", kernel_shaping=True)
    assert summary_line(ok) == (
        "pi: ok  aarch64, Python 3.9.2, 3.0 GiB free, clock +12 ms, start setsid, shaping tc, "
        "profile raspberry-pi-4, 10.0.0.2:22"
    )
    bad = DeviceCheck(name="r", host="10.0.0.3:22", profile="openwrt-router", reachable=True, python="3.7.3",
                      arch="mips", free_bytes=1 << 20, detach="nohup",
                      problems=["Python 3.7.3 is older than 3.9"], warnings=["clock off by +3.00s (run NTP)"])
    line = summary_line(bad)
    assert line.startswith("r: REFUSED  mips, Python 3.7.3,") and "\n" not in line
    assert line.endswith("-- Python 3.7.3 is older than 3.9; warning: clock off by +3.00s (run NTP)")
    gone = DeviceCheck(name="g", host="10.0.0.9:22", profile="generic-linux", problems=["unreachable: timeout"])
    assert summary_line(gone) == "g: REFUSED  10.0.0.9:22  unreachable: timeout"


def test_tc_owner_file_is_per_interface_and_address() -> None:
    from orchestrator.backends.ssh import shaping

    path = shaping.owner_path("/root/.local/share", "eth0", "fe80::1")
    assert path == "/root/.local/share/meshbed/tc-eth0-fe80__1.owner"
    assert shaping.other_owner("owner=mesh-a\n") == "mesh-a"
    assert shaping.other_owner("") is None
    assert '[ "$o" != mesh-b ]' in shaping.claim_command("eth0", path, "mesh-b")
