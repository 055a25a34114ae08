"""`client:` and `tracker:` input: refused with FILE:LINE before anything is deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import clients
from orchestrator.backends.netns import NetnsBackend
from orchestrator.cli import main as cli_main
from orchestrator.errors import InputError
from orchestrator.loader import load_topology_text

HEAD = "name: t\nbackend: {backend}\n{extra}groups:\n  a:\n    count: 2\n    client: {client}\n"


def _load(client: str, backend: str = "netns", extra: str = "") -> object:
    return load_topology_text(HEAD.format(backend=backend, client=client, extra=extra),
                              Path("t.yaml"))


def test_an_unknown_client_is_refused_at_its_line() -> None:
    with pytest.raises(InputError) as err:
        _load("utorrent")
    assert err.value.line == 6
    assert "unknown client 'utorrent'" in err.value.message
    assert "qbittorrent" in err.value.message


def test_a_client_that_is_not_installed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    clients.installed.cache_clear()
    monkeypatch.setattr(clients.ADAPTERS["transmission"], "binary", "no-such-transmission-x")
    try:
        with pytest.raises(InputError) as err:
            _load("transmission")
    finally:
        clients.installed.cache_clear()
    assert err.value.line == 6
    assert "not installed" in err.value.message and "transmission-daemon" in err.value.message


def test_a_client_on_a_backend_that_cannot_shape_in_the_kernel_is_refused() -> None:
    with pytest.raises(InputError) as err:
        _load("aria2", backend="local")
    assert err.value.line == 6
    assert "client only applies to docker, netns and ssh, not 'local'" in err.value.message


def test_client_nodes_carry_their_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "installed", lambda name: True)
    topo = _load("qbittorrent")
    assert [clients.client_of(n.options) for n in topo.nodes] == ["qbittorrent"] * 2  # type: ignore[attr-defined]
    plain = load_topology_text("name: t\nbackend: netns\ngroups:\n  a: {count: 1}\n")
    assert clients.client_of(plain.nodes[0].options) == clients.MESHBED


@pytest.mark.parametrize(("tracker", "message"), [
    ("ftp://x/announce", "tracker 'ftp://x/announce' is neither opentracker nor"),
    ("opentraker", "tracker 'opentraker' is neither opentracker nor"),
])
def test_a_bad_tracker_is_refused_at_its_line(tracker: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        _load("meshbed", extra=f"tracker: {tracker}\n")
    assert err.value.line == 3 and message in err.value.message


def test_opentracker_needs_a_backend_that_runs_it() -> None:
    with pytest.raises(InputError) as err:
        load_topology_text("name: t\ntracker: opentracker\ngroups:\n  a: {count: 1}\n",
                           Path("t.yaml"))
    assert err.value.line == 2
    assert "runs beside meshes of backend netns" in err.value.message


def test_opentracker_not_installed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NetnsBackend, "tracker_unavailable",
                        classmethod(lambda cls: "opentracker is not installed on this host"))
    with pytest.raises(InputError) as err:
        _load("meshbed", extra="tracker: opentracker\n")
    assert err.value.line == 3 and "not installed" in err.value.message


def test_a_tracker_url_is_kept() -> None:
    topo = _load("meshbed", extra="tracker: udp://10.0.0.1:6969/announce\n")
    assert topo.tracker == "udp://10.0.0.1:6969/announce"  # type: ignore[attr-defined]


def test_validate_exits_2_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHBED_HOME", str(tmp_path / "home"))
    topo = tmp_path / "bad.yaml"
    topo.write_text(HEAD.format(backend="netns", client="utorrent", extra=""))
    assert cli_main(["validate", str(topo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{topo}:6: ") and "utorrent" in err[0]
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").iterdir())
