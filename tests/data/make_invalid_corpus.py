"""Regenerates tests/data/invalid/*.yaml. Each body marks the offending line with "#<<"; the
file gets a first line "# error: LINE: FRAGMENT" that tests/unit/test_loader.py checks."""

from pathlib import Path

OUT = Path(__file__).resolve().parent / "invalid"
BASE = """name: bad
groups:
  seeders: {count: 1}
  leechers:
    count: 8
content:
  movie: {size: 16MiB, seeders: [seeders]}
"""

CASES: dict[str, tuple[str, str]] = {}


def case(name: str, fragment: str, body: str) -> None:
    CASES[name] = (fragment, body)


case(
    "yaml-unclosed-flow",
    "YAML syntax error",
    """name: bad
groups:
  seeders: {count: 1
  leechers: {count: 2}   #<<
""",
)
case(
    "yaml-bad-indent",
    "YAML syntax error: mapping values are not allowed",
    """name: bad
groups:
  seeders:
    count: 1
     link: {up: 1mbit}   #<<
""",
)
case(
    "yaml-tab",
    "YAML syntax error",
    """name: bad
groups:
\tseeders: {count: 1}   #<<
""",
)
case("empty-file", "empty topology", "#<<\n")
case(
    "not-a-mapping",
    "a topology must be a mapping",
    """- name: bad   #<<
- groups: {}
""",
)
case(
    "two-documents",
    "more than one YAML document",
    """name: bad
groups: {a: {count: 1}}
---
name: other   #<<
""",
)
case(
    "duplicate-key",
    "duplicate key 'leechers' (first on line 5)",
    """name: bad
groups:
  seeders: {count: 1}
  leechers: {count: 2}
  leechers: {count: 3}   #<<
""",
)
case(
    "unsupported-tag",
    "unsupported YAML tag '!include'",
    """name: bad
groups: !include groups.yaml   #<<
""",
)
case(
    "python-tag",
    "bad YAML value",
    """name: !!python/object:os.system bad   #<<
groups: {a: {count: 1}}
""",
)
case(
    "merge-key",
    "merge keys (<<) are not supported",
    """name: bad
base: &base {count: 1}
groups:
  a:
    <<: *base   #<<
""",
)
case(
    "unknown-top-key",
    "unknown key 'grups' in the topology (did you mean 'groups'?)",
    """name: bad
grups:   #<<
  a: {count: 1}
""",
)
case(
    "unknown-group-key",
    "unknown key 'cuont' in group 'leechers' (did you mean 'count'?)",
    """name: bad
groups:
  seeders: {count: 1}
  leechers:
    cuont: 8   #<<
""",
)
case(
    "unknown-link-key",
    "unknown key 'upp' in group 'seeders' link (did you mean 'up'?)",
    """name: bad
groups:
  seeders:
    link:
      upp: 10mbit   #<<
""",
)
case(
    "unknown-content-key",
    "unknown key 'seeder' in content 'movie' (did you mean 'seeders'?)",
    """name: bad
groups:
  seeders: {count: 1}
content:
  movie:
    size: 1MiB
    seeder: [seeders]   #<<
""",
)
case(
    "unknown-event-key",
    "unknown key 'fetc' in scenario entry 1 (did you mean 'fetch'?)",
    BASE
    + """scenario:
  - at: 0s
    fetc: {content: movie, by: leechers}   #<<
""",
)
case(
    "unknown-expect-key",
    "unknown key 'all_complete' in 'expect' (did you mean 'all_complete_within'?)",
    BASE
    + """expect:
  all_complete: 60s   #<<
""",
)
case(
    "missing-name",
    "the topology needs 'name'",
    """groups:   #<<
  a: {count: 1}
""",
)
case(
    "missing-groups",
    "the topology needs 'groups'",
    """name: bad   #<<
""",
)
case(
    "empty-groups",
    "'groups' must be a mapping",
    """name: bad
groups: []   #<<
""",
)
case(
    "bad-name",
    "name 'Quick_Start' is not a valid name: use 1-32 of a-z, 0-9 and '-'",
    """name: Quick_Start   #<<
groups: {a: {count: 1}}
""",
)
case(
    "long-name",
    "is not a valid name",
    """name: a-very-long-topology-name-that-goes-on   #<<
groups: {a: {count: 1}}
""",
)
case(
    "bad-group-name",
    "group name 'Leechers' is not a valid name",
    """name: bad
groups:
  Leechers: {count: 2}   #<<
""",
)
case(
    "bad-content-name",
    "content name 'movie.mkv' is not a valid name",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie.mkv: {size: 1MiB, seeders: [seeders]}   #<<
""",
)
case(
    "count-not-number",
    "group 'leechers': count must be a whole number, got a string ('many')",
    """name: bad
groups:
  leechers:
    count: many   #<<
""",
)
case(
    "count-float",
    "count must be a whole number, got a number (2.5)",
    """name: bad
groups:
  leechers: {count: 2.5}   #<<
""",
)
case(
    "count-bool",
    "count must be a whole number, got a boolean (true)",
    """name: bad
groups:
  leechers:
    count: yes   #<<
""",
)
case(
    "count-negative",
    "group 'leechers': count must be at least 0, got -1",
    """name: bad
groups:
  leechers:
    count: -1   #<<
""",
)
case(
    "count-huge",
    "group 'leechers': count 5000 is too large (at most 2000 nodes per mesh)",
    """name: bad
groups:
  leechers:
    count: 5000   #<<
""",
)
case(
    "too-many-nodes",
    "too many nodes: 2400 so far, at most 2000 per mesh",
    """name: bad
groups:
  a: {count: 1200}
  b: {count: 1200}   #<<
""",
)
case(
    "group-not-mapping",
    "group 'leechers' must be a mapping (key: value), got a number (8)",
    """name: bad
groups:
  leechers: 8   #<<
""",
)
case(
    "rate-bytes",
    "group 'seeders': link up: unknown rate unit 'MB/s' in '10MB/s': rates are in bits per second",
    """name: bad
groups:
  seeders:
    link: {up: 10MB/s}   #<<
""",
)
case(
    "rate-mbps",
    "unknown rate unit 'mbps'",
    """name: bad
defaults:
  link:
    down: 10mbps   #<<
groups: {a: {count: 1}}
""",
)
case(
    "rate-zero",
    "defaults: link up must be more than 0",
    """name: bad
defaults:
  link:
    up: 0mbit   #<<
groups: {a: {count: 1}}
""",
)
case(
    "rate-negative",
    "rate must not be negative",
    """name: bad
groups:
  a:
    link: {down: -5mbit}   #<<
""",
)
case(
    "rate-list",
    "link up must be a single value, got a list",
    """name: bad
groups:
  a:
    link: {up: [1mbit]}   #<<
""",
)
case(
    "size-unit",
    "content 'movie': size: unknown size unit 'MiBs'",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:
    size: 32MiBs   #<<
    seeders: [seeders]
""",
)
case(
    "size-fraction",
    "size is not a whole number of bytes",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:
    size: 1.5B   #<<
    seeders: [seeders]
""",
)
case(
    "size-zero",
    "content 'movie': size must be more than 0",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:
    size: 0   #<<
    seeders: [seeders]
""",
)
case(
    "duration-unit",
    "scenario entry 1: at: unknown duration unit 'sec'",
    BASE
    + """scenario:
  - at: 5sec   #<<
    kill: leechers-0
""",
)
case(
    "duration-negative",
    "scenario entry 1: at: duration must not be negative",
    BASE
    + """scenario:
  - at: -5s   #<<
    kill: leechers-0
""",
)
case(
    "latency-no-unit",
    "group 'a': link latency needs a unit, e.g. 80ms",
    """name: bad
groups:
  a:
    link:
      latency: 80   #<<
""",
)
case(
    "latency-negative",
    "link latency: duration must not be negative",
    """name: bad
groups:
  a:
    link: {latency: -3ms}   #<<
""",
)
case(
    "loss-too-high",
    "link loss: percentage must be within 0..100%",
    """name: bad
groups:
  a:
    link:
      loss: 150%   #<<
""",
)
case(
    "loss-fraction-too-high",
    "percentage must be within 0..100%: 2",
    """name: bad
groups:
  a:
    link: {loss: 2}   #<<
""",
)
case(
    "chunk-not-power-of-two",
    "chunk_size 300KiB must be a power of two within 16KiB..16MiB",
    """name: bad
chunk_size: 300KiB   #<<
groups: {a: {count: 1}}
""",
)
case(
    "chunk-too-small",
    "chunk_size 4KiB must be a power of two within 16KiB..16MiB",
    """name: bad
chunk_size: 4KiB   #<<
groups: {a: {count: 1}}
""",
)
case(
    "content-chunk-too-big",
    "chunk_size 32MiB must be a power of two",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:
    size: 1GiB
    chunk_size: 32MiB   #<<
    seeders: [seeders]
""",
)
case(
    "unknown-backend",
    "unknown backend 'dokcer' (did you mean 'docker'?)",
    """name: bad
backend: dokcer   #<<
groups: {a: {count: 1}}
""",
)
case(
    "unknown-group-backend",
    "unknown backend 'namespace'",
    """name: bad
groups:
  a:
    count: 2
    backend: namespace   #<<
""",
)
case(
    "unknown-strategy",
    "unknown strategy 'client_server' (did you mean 'client-server'?)",
    """name: bad
strategy: client_server   #<<
groups: {a: {count: 1}}
""",
)
case(
    "seed-negative",
    "seed must be at least 0, got -3",
    """name: bad
seed: -3   #<<
groups: {a: {count: 1}}
""",
)
case(
    "monitoring-not-bool",
    "monitoring must be true or false, got a string ('please')",
    """name: bad
monitoring: please   #<<
groups: {a: {count: 1}}
""",
)
case(
    "timeout-zero",
    "timeout must be more than 0s",
    """name: bad
timeout: 0s   #<<
groups: {a: {count: 1}}
""",
)
case(
    "content-no-seeders",
    "content 'movie' has no seeders",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:   #<<
    size: 1MiB
""",
)
case(
    "content-seeders-empty",
    "content 'movie': seeders: empty list",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:
    size: 1MiB
    seeders: []   #<<
""",
)
case(
    "content-size-and-path",
    "content 'movie' has both size and path",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:
    size: 1MiB
    path: ./movie.bin   #<<
    seeders: [seeders]
""",
)
case(
    "content-neither",
    "content 'movie' needs size (synthetic content) or path (a real file)",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:   #<<
    seeders: [seeders]
""",
)
case(
    "content-path-missing",
    "content 'paper': file './no-such-paper.pdf' not found",
    """name: bad
groups: {seeders: {count: 1}}
content:
  paper:
    path: ./no-such-paper.pdf   #<<
    seeders: [seeders]
""",
)
case(
    "content-path-directory",
    "content 'paper': '.' is not a regular file",
    """name: bad
groups: {seeders: {count: 1}}
content:
  paper:
    path: .   #<<
    seeders: [seeders]
""",
)
case(
    "unknown-selector",
    "fetch: by: unknown group or node 'leechrs' (did you mean 'leechers'?)",
    BASE
    + """scenario:
  - {at: 0s, fetch: {content: movie, by: leechrs}}   #<<
""",
)
case(
    "unknown-seeder-group",
    "content 'movie': seeders: unknown group or node 'seeder' (did you mean 'seeders'?)",
    """name: bad
groups: {seeders: {count: 1}}
content:
  movie:
    size: 1MiB
    seeders:
      - seeder   #<<
""",
)
case(
    "selector-out-of-range",
    "kill: selector 'leechers[8]' is out of range: 'leechers' has 8 nodes (indexes 0..7)",
    BASE
    + """scenario:
  - {at: 0s, fetch: {content: movie, by: leechers}}
  - {at: 5s, kill: "leechers[8]"}   #<<
""",
)
case(
    "slice-out-of-range",
    "kill: selector 'leechers[0:30]' is out of range: 'leechers' has 8 nodes (slice bounds -8..8)",
    BASE
    + """scenario:
  - {at: 0s, fetch: {content: movie, by: leechers}}
  - {at: 5s, kill: "leechers[0:30]"}   #<<
""",
)
case(
    "node-out-of-range",
    "stop: node 'leechers-8' does not exist: 'leechers' has 8 nodes (leechers-0..leechers-7)",
    BASE
    + """scenario:
  - at: 5s
    stop: leechers-8   #<<
""",
)
case(
    "empty-slice",
    "start: selector 'leechers[6:2]' selects no nodes",
    BASE
    + """scenario:
  - at: 5s
    start: "leechers[6:2]"   #<<
""",
)
case(
    "bad-selector-syntax",
    "bad selector 'leechers[1'",
    BASE
    + """scenario:
  - at: 5s
    kill: "leechers[1"   #<<
""",
)
case(
    "selector-number",
    "kill: a selector is a name or a list of names, got a number (3)",
    BASE
    + """scenario:
  - at: 5s
    kill: 3   #<<
""",
)
case(
    "selector-empty-group",
    "fetch: by: selector 'idle': group 'idle' has no nodes (count 0)",
    """name: bad
groups:
  seeders: {count: 1}
  leechers: {count: 2}
  idle: {count: 0}
content:
  movie: {size: 16MiB, seeders: [seeders]}
scenario:
  - {at: 0s, fetch: {content: movie, by: [leechers, idle]}}   #<<
""",
)
case(
    "unknown-content",
    "fetch: unknown content 'moive' (did you mean 'movie'?)",
    BASE
    + """scenario:
  - at: 0s
    fetch:
      content: moive   #<<
      by: leechers
""",
)
case(
    "fetch-no-by",
    "fetch needs 'by'",
    BASE
    + """scenario:
  - at: 0s
    fetch: {content: movie}   #<<
""",
)
case(
    "fetch-by-seeder",
    "fetch: 'seeders-0' already seeds 'movie', fetching it does nothing",
    BASE
    + """scenario:
  - at: 0s
    fetch:
      content: movie
      by: [seeders, leechers]   #<<
""",
)
case(
    "event-no-action",
    "scenario entry 2 has no action",
    BASE
    + """scenario:
  - {at: 0s, fetch: {content: movie, by: leechers}}
  - at: 3s   #<<
""",
)
case(
    "event-two-actions",
    "scenario entry 1: one action per entry, found 'kill' and 'start'",
    BASE
    + """scenario:
  - at: 3s
    kill: leechers-0
    start: leechers-1   #<<
""",
)
case(
    "event-not-mapping",
    "scenario entry 1 must be a mapping",
    BASE
    + """scenario:
  - kill leechers-0   #<<
""",
)
case(
    "scenario-not-list",
    "'scenario' must be a list, got a mapping",
    BASE
    + """scenario:
  kill: leechers-0   #<<
""",
)
case(
    "event-after-timeout",
    "scenario entry 1: at 11m40s is not before the timeout (10m00s); raise 'timeout:'",
    BASE
    + """scenario:
  - at: 700s   #<<
    kill: leechers-0
""",
)
case(
    "partition-overlap",
    "partition sides overlap: 'leechers-3' is in side 1 and side 2",
    BASE
    + """scenario:
  - at: 5s
    partition:
      - [seeders, "leechers[0:4]"]
      - ["leechers[3:]"]   #<<
""",
)
case(
    "partition-one-side",
    "partition needs two or more sides",
    BASE
    + """scenario:
  - {at: 5s, partition: [[seeders, leechers]]}   #<<
""",
)
case(
    "heal-false",
    "heal takes true (heal: true), got a boolean (false)",
    BASE
    + """scenario:
  - at: 5s
    heal: false   #<<
""",
)
case(
    "link-event-no-nodes",
    "link needs 'nodes'",
    BASE
    + """scenario:
  - at: 5s
    link: {latency: 50ms}   #<<
""",
)
case(
    "link-event-nothing",
    "link event changes nothing",
    BASE
    + """scenario:
  - at: 5s
    link: {nodes: leechers}   #<<
""",
)
case(
    "link-event-bad-key",
    "unknown key 'delay' in link event link (did you mean 'latency'?)",
    BASE
    + """scenario:
  - at: 5s
    link:
      nodes: leechers
      delay: 50ms   #<<
""",
)
case(
    "group-name-clash",
    "group name 'leechers-1' is also the name of a node of group 'leechers'",
    """name: bad
groups:
  leechers: {count: 4}
  leechers-1: {count: 1}   #<<
""",
)
case(
    "image-on-local",
    "group 'a': image only applies to docker and swarm, not 'local'",
    """name: bad
groups:
  a:
    count: 1
    image: meshbed-peer:dev   #<<
""",
)
case(
    "placement-on-docker",
    "group 'a': placement only applies to the swarm backend, not 'docker'",
    """name: bad
groups:
  a:
    count: 1
    backend: docker
    placement: [node.role==worker]   #<<
""",
)
case(
    "resources-cpus-zero",
    "group 'a': resources cpus must be a number above 0, got 0",
    """name: bad
groups:
  a:
    count: 1
    resources:
      cpus: 0   #<<
""",
)
case(
    "resources-memory-small",
    "group 'a': resources memory 1KiB is too small",
    """name: bad
groups:
  a:
    count: 1
    resources: {memory: 1KiB}   #<<
""",
)
case(
    "ssh-without-devices",
    "group 'a' runs on the ssh backend but lists no devices",
    """name: bad
groups:
  a:
    count: 1
    backend: ssh   #<<
""",
)
case(
    "devices-without-inventory",
    "group 'lab' lists devices but the topology has no 'inventory:' file",
    """name: bad
groups:
  lab:
    devices: [pi-kitchen]   #<<
""",
)
case(
    "inventory-missing",
    "inventory 'no-such-inventory.yaml' not found",
    """name: bad
inventory: no-such-inventory.yaml   #<<
groups: {a: {count: 1}}
""",
)
case(
    "unknown-device",
    "group 'lab': unknown device or tag 'pi-kitchn' (did you mean 'pi-kitchen'?) in lab.yaml",
    """name: bad
inventory: ../inventories/lab.yaml
groups:
  lab:
    devices:
      - pi
      - pi-kitchn   #<<
""",
)
case(
    "devices-count-mismatch",
    "group 'lab': count 3 does not match the 2 devices selected (pi-kitchen, pi-office)",
    """name: bad
inventory: ../inventories/lab.yaml
groups:
  lab:
    devices: [pi]
    count: 3   #<<
""",
)
case(
    "devices-wrong-backend",
    "group 'lab': devices need backend ssh, not 'docker'",
    """name: bad
inventory: ../inventories/lab.yaml
groups:
  lab:
    devices: [pi]
    backend: docker   #<<
""",
)
case(
    "min-efficiency-range",
    "expect: min_efficiency: percentage must be within 0..100%",
    BASE
    + """expect:
  min_efficiency: 120%   #<<
""",
)
case(
    "non-string-key",
    "keys must be plain strings",
    """name: bad
groups:
  ? [a, b]   #<<
  : {count: 1}
""",
)
case(
    "recursive-alias",
    "recursive alias",
    """name: bad
groups: &g   #<<
  a: *g
""",
)

case(
    "magnet-with-size",
    "content 'film' has both magnet and size",
    """name: bad
groups: {seeders: {count: 1}, leechers: {count: 2}}
content:
  movie: {size: 1MiB, seeders: [seeders]}
  film:
    magnet: "@movie"
    size: 1MiB   #<<
""",
)
case(
    "magnet-uri-outside",
    "content 'film': magnet must name a content of this topology as \"@NAME\"",
    """name: bad
groups: {seeders: {count: 1}, leechers: {count: 2}}
content:
  film:
    magnet: "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"   #<<
""",
)
case(
    "magnet-malformed",
    "content 'film': magnet must be \"@NAME\" naming another content, got 'movie'",
    """name: bad
groups: {seeders: {count: 1}, leechers: {count: 2}}
content:
  movie: {size: 1MiB, seeders: [seeders]}
  film: {magnet: movie}   #<<
""",
)
case(
    "magnet-unknown-content",
    "content 'film': magnet '@movei' names no size: or path: content (did you mean 'movie'?)",
    """name: bad
groups: {seeders: {count: 1}, leechers: {count: 2}}
content:
  movie: {size: 1MiB, seeders: [seeders]}
  film: {magnet: "@movei"}   #<<
""",
)
case(
    "magnet-of-magnet",
    "content 'film2': magnet '@film' names a magnet content; name the size: or path: content 'movie'",
    """name: bad
groups: {seeders: {count: 1}, leechers: {count: 2}}
content:
  movie: {size: 1MiB, seeders: [seeders]}
  film: {magnet: "@movie"}
  film2: {magnet: "@film"}   #<<
""",
)
case(
    "magnet-seeders-without-it",
    "content 'film': seeders leechers-0, leechers-1 do not hold movie (its seeders: seeders-0)",
    """name: bad
groups: {seeders: {count: 1}, leechers: {count: 2}}
content:
  movie: {size: 1MiB, seeders: [seeders]}
  film:
    magnet: "@movie"
    seeders: [leechers]   #<<
""",
)


def main() -> None:
    for old in OUT.glob("*.yaml"):
        old.unlink()
    for name, (fragment, body) in CASES.items():
        lines = body.splitlines()
        marked = [i for i, text in enumerate(lines) if text.rstrip().endswith("#<<")]
        assert len(marked) == 1, name
        line = marked[0] + 2  # +1 for 1-based, +1 for the comment line on top
        if name == "empty-file":
            line = 1  # a file of comments only: the error is on line 1
        lines[marked[0]] = lines[marked[0]].replace("   #<<", "").replace("#<<", "")
        text = f"# error: {line}: {fragment}\n" + "\n".join(lines) + "\n"
        (OUT / f"{name}.yaml").write_text(text)
    table = [
        "# Expected loader errors",
        "",
        "Generated by `python3 tests/data/make_invalid_corpus.py` (do not edit by hand).",
        "Each `invalid/NAME.yaml` starts with `# error: LINE: FRAGMENT`;",
        "`tests/unit/test_loader.py::test_invalid_corpus` checks line and fragment.",
        "",
        "| file | line | message contains |",
        "|---|---|---|",
    ]
    for name in sorted(CASES):
        first = (OUT / f"{name}.yaml").read_text().splitlines()[0]
        where, fragment = first[len("# error: ") :].split(": ", 1)
        table.append(f"| {name}.yaml | {where} | `{fragment}` |")
    (OUT.parent / "ERRORS.md").write_text("\n".join(table) + "\n")
    print(len(CASES), "cases")


if __name__ == "__main__":
    main()
