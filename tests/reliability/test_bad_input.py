"""Bad input never deploys anything. Every broken topology (this folder's corpus of hostile,
huge, looping, binary and badly-referenced files, plus the loader's own corpus in
tests/data/invalid) makes `meshbed validate`, `meshbed up` and `meshbed run` print exactly one
line `FILE:LINE: message` on stderr and exit 2, with $MESHBED_HOME left empty. Property tests
push random and mutated YAML through the loader and the `up` path: InputError or a topology,
never a crash or a hang."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import main as cli_main
from orchestrator.errors import InputError
from orchestrator.loader import load_topology, load_topology_text
from tests.reliability.support import ROOT

pytestmark = pytest.mark.timeout(240)

DATA = Path(__file__).resolve().parent / "data"
OURS = sorted((DATA / "topologies").glob("*.yaml"))
THEIRS = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (?:(?P<file>[\w.-]+\.yaml):)?(?P<line>\d+): (?P<fragment>.+)$")
ONE_LINE = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+): (?P<msg>[^\n]+)\n?$")


def expected(path: Path) -> tuple[str, int, str]:
    head = path.read_bytes().split(b"\n", 1)[0].decode()
    m = EXPECT.match(head)
    assert m, f"{path.name}: first line must be '# expect: [FILE:]LINE: FRAGMENT'"
    return m.group("file") or path.name, int(m.group("line")), m.group("fragment")


def test_corpus_is_there() -> None:
    assert len(OURS) >= 40 and len(THEIRS) >= 80


@pytest.mark.parametrize("path", OURS, ids=lambda p: p.stem)
def test_loader_names_file_and_line(path: Path) -> None:
    file, line, fragment = expected(path)
    with pytest.raises(InputError) as info:
        load_topology(path)
    err = info.value
    assert err.file is not None and Path(err.file).name == file, str(err)
    assert err.line == line, str(err)
    assert fragment in err.message, str(err)
    assert "\n" not in str(err)


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    monkeypatch.setenv("MESHBED_HOME", str(home))
    yield home
    assert not home.exists() or list(home.iterdir()) == [], "bad input deployed something"


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", OURS + THEIRS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_cli_refuses_with_one_line_and_deploys_nothing(
    path: Path, empty_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in ("validate", "up", "run"):
        code, _out, err = _cli([command, str(path)], capsys)
        assert code == 2, (command, code, err)
        m = ONE_LINE.match(err)
        assert m, f"{command}: not one FILE:LINE: line: {err!r}"
        assert Path(m.group("file")).name.endswith(".yaml"), err


def test_real_cli_processes_exit_2_and_leave_no_trace(tmp_path: Path) -> None:
    """The same through real `meshbed up` processes (exit code, stderr, nothing started)."""
    home = tmp_path / "home"
    env = dict(os.environ, MESHBED_HOME=str(home))
    before = _agents()
    for path in OURS[::3]:
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "up", str(path)], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (path.name, proc.stderr)
        assert ONE_LINE.match(proc.stderr), (path.name, proc.stderr)
        assert proc.stdout == ""
    assert not home.exists() or list(home.iterdir()) == []
    assert _agents() == before


def test_dynamic_paths_symlink_loop_fifo_missing(
    tmp_path: Path, empty_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Content paths that could hang or crash a naive loader: a symlink loop, a FIFO (opening
    it blocks), a file that is missing, a directory."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for target in ("loop", "fifo", "missing.bin", "dir"):
        topo = tmp_path / f"path-{target.replace('.', '-')}.yaml"
        topo.write_text(
            "name: bad\ngroups:\n  seeders: {count: 1}\n  leechers: {count: 1}\n"
            f"content:\n  blob: {{path: {target}, seeders: [seeders]}}\n"
        )
        for command in ("validate", "up"):
            code, _out, err = _cli([command, str(topo)], capsys)
            assert code == 2, (target, err)
            assert err.startswith(f"{topo}:6: content 'blob'"), err
    # And a missing topology file.
    code, _out, err = _cli(["up", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and err.count("\n") == 1 and "nope.yaml" in err


def _agents() -> set[str]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"peer\0run\0" in cmd and b"\0bad\0" in cmd:
                found.add(entry.name)
    return found


# --- property tests -------------------------------------------------------------------------
VALID = (ROOT / "examples" / "churn.yaml").read_text()
YAMLISH = st.sampled_from(list("{}[]:,-&*!|>'\"#%@` \n\t0123456789abcdefsMiBkmgbit.%_") +
                          ["\x00", "\ufeff", "~", "null", "true", "1e999", "-1", "&a", "*a",
                           "<<: *a", "!!python/object", "count", "leechers[", "0:3]"])


@st.composite
def mutated(draw: Any) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        text = text[:at] + "".join(draw(st.lists(YAMLISH, max_size=4))) + text[at + cut:]
    return text


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["1MiB", "10mbit", "5s", "leechers[0:2]", "seeders", "2%"]))
KEYS = st.sampled_from(["name", "backend", "seed", "groups", "content", "scenario", "expect",
                        "defaults", "link", "count", "size", "seeders", "at", "fetch", "kill",
                        "partition", "heal", "by", "up", "down", "latency", "leechers", "x"])
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)), max_leaves=25)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_topologies_give_input_error_or_topology(text: str) -> None:
    try:
        load_topology_text(text)
    except InputError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=2000)
@given(st.dictionaries(KEYS, TREES, max_size=8))
def test_random_trees_give_input_error_or_topology(doc: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(doc)
    except (yaml.YAMLError, ValueError):
        return
    try:
        load_topology_text(text)
    except InputError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=40, deadline=5000,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutated())
def test_up_on_broken_files_deploys_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """`meshbed up` on a mutated file that does not load: exit 2, one line, nothing created."""
    path = tmp_path / "mutated.yaml"
    path.write_text(text, errors="surrogatepass")
    try:
        load_topology(path)
        return  # still a valid topology: deploying it is not this test's business
    except InputError:
        pass
    home = tmp_path / "home-up"
    monkeypatch.setenv("MESHBED_HOME", str(home))
    code = cli_main(["up", str(path)])
    assert code == 2
    assert not home.exists() or list(home.iterdir()) == []
