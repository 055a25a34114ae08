"""peer.shaping: token buckets, latency/jitter/loss model, blocklist.

Timing runs on a virtual clock (tests/virtualtime.py: shaping reads only the loop's clock),
so nothing sleeps for real and the figures are exact, whatever the load of the host.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from peer.shaping import LinkEmulator, TokenBucket, parse_rate
from tests.virtualtime import run


def now() -> float:
    return asyncio.get_running_loop().time()

pytestmark = pytest.mark.timeout(60)

BLOCK = 16 * 1024


def test_parse_rate_units() -> None:
    assert parse_rate("10mbit") == 10_000_000
    assert parse_rate("40000000bit") == 40_000_000
    assert parse_rate("500kbit") == 500_000
    assert parse_rate("1gbit") == 1_000_000_000
    assert parse_rate("1.5Mbit") == 1_500_000
    assert parse_rate("64000") == 64_000
    assert parse_rate(8000) == 8000
    for bad in ("", "fast", "10mb/s", "-5mbit", "0", "10 parsecs", True):
        with pytest.raises(ValueError):
            parse_rate(bad)  # type: ignore[arg-type]


async def _pump(link: LinkEmulator, total: int, counter: list[int], index: int) -> None:
    sent = 0
    while sent < total:
        await link.send_gate(BLOCK)
        sent += BLOCK
        counter[index] += BLOCK


def test_capped_send_rate_within_5_percent_over_tcp() -> None:
    """Bytes pushed through a real loopback socket behind send_gate arrive at the cap."""
    # A modest rate: its burst tolerance (65 ms) absorbs scheduling delays on a busy host.
    cap_bps = 4_000_000  # 500 kB/s
    total = 1536 * 1024

    async def main() -> float:
        link = LinkEmulator(up_bps=cap_bps)
        got = 0
        done = asyncio.Event()
        first: list[float] = []

        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            nonlocal got
            while got < total:
                data = await r.read(1 << 16)
                if not data:
                    break
                if not first:
                    first.append(now())
                got += len(data)
            done.set()
            w.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = b"x" * BLOCK
        start = now()
        for _ in range(total // BLOCK):
            await link.send_gate(BLOCK)
            writer.write(payload)
            await writer.drain()
        await asyncio.wait_for(done.wait(), 30)
        elapsed = now() - start
        writer.close()
        server.close()
        await server.wait_closed()
        return total / elapsed

    rate = run(main())
    cap = cap_bps / 8
    # the first burst (65 ms of tokens) goes at once; after it, exactly the cap
    assert 0.99 * cap < rate < 1.06 * cap, f"measured {rate:.0f} B/s for a cap of {cap:.0f} B/s"


def test_four_senders_share_fairly() -> None:
    cap_bps = 16_000_000

    async def main() -> list[int]:
        link = LinkEmulator(up_bps=cap_bps)
        counter = [0, 0, 0, 0]
        tasks = [asyncio.ensure_future(_pump(link, 1 << 40, counter, i)) for i in range(4)]
        await asyncio.sleep(3.0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return counter

    counter = run(main())
    total = sum(counter)
    mean = total / 4
    assert all(abs(c - mean) / mean < 0.05 for c in counter), counter
    expected = cap_bps / 8 * 3.0 + 32 * 1024  # plus the initial burst
    assert abs(total - expected) <= 4 * BLOCK, total  # a block in flight per sender


def test_down_cap_limits_recv_gate() -> None:
    async def main() -> float:
        link = LinkEmulator(down_bps=4_000_000)  # 500 kB/s
        start = now()
        for _ in range(64):  # 1 MiB
            await link.recv_gate(BLOCK)
        return now() - start

    elapsed = run(main())
    expected = (64 * BLOCK - 32 * 1024) / 500_000
    assert elapsed == pytest.approx(expected, rel=1e-6), elapsed


def test_rate_change_releases_waiters() -> None:
    async def main() -> float:
        link = LinkEmulator(up_bps=8000)  # 1 kB/s: 1 MiB would take ~17 minutes
        await link.send_gate(BLOCK)
        waiter = asyncio.ensure_future(link.send_gate(1 << 20))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        start = now()
        link.update(up_bps=None)
        await asyncio.wait_for(waiter, 5)
        return now() - start

    assert run(main()) < 1.0


def test_latency_delays_first_message_but_pipelines_bursts() -> None:
    async def main() -> tuple[float, float]:
        link = LinkEmulator(latency_ms=80)
        start = now()
        await link.recv_gate(BLOCK)
        first = now() - start
        # 30 messages read back to back: they were buffered, one latency for the burst.
        start = now()
        for _ in range(30):
            await link.recv_gate(BLOCK)
        burst = now() - start
        return first, burst

    first, burst = run(main())
    assert first == pytest.approx(0.080), first
    assert burst < 0.08, burst  # stop-and-wait would take 30 * 80 ms


def test_idle_gap_starts_a_new_delay_and_jitter_keeps_order() -> None:
    async def main() -> list[float]:
        link = LinkEmulator(latency_ms=40, jitter_ms=20, rng=random.Random(3))
        delays = []
        for _ in range(8):
            await asyncio.sleep(0.02)  # idle: each message is a fresh arrival
            start = now()
            await link.recv_gate(100)
            delays.append(now() - start)
        return delays

    delays = run(main())
    assert all(0.015 <= d < 0.3 for d in delays), delays
    assert max(delays) - min(delays) > 0.005, delays  # jitter varies the delay


def test_latency_is_per_connection_task() -> None:
    """Two connections reading at once both see one latency, not the sum."""

    async def reader(link: LinkEmulator) -> float:
        start = now()
        await link.recv_gate(BLOCK)
        return now() - start

    async def main() -> list[float]:
        link = LinkEmulator(latency_ms=60)
        return list(await asyncio.gather(reader(link), reader(link), reader(link)))

    for d in run(main()):
        assert d == pytest.approx(0.060), d


def test_loss_model_counts_geometric_losses() -> None:
    link = LinkEmulator(loss=0.02, rng=random.Random(11))
    lost = sum(link._lost_segments(1460 * 100) for _ in range(1000))  # 100k segments
    assert 1700 < lost < 2300, lost
    assert LinkEmulator()._lost_segments(10**6) == 0


def test_loss_slows_a_stream() -> None:
    async def main() -> float:
        link = LinkEmulator(loss=0.05, rng=random.Random(5))
        start = now()
        for _ in range(20):
            await link.recv_gate(BLOCK)  # 12 segments each: ~12 losses * 10 ms
        return now() - start

    assert run(main()) > 0.05


def test_fast_path_when_uncapped() -> None:
    link = LinkEmulator()
    assert link._recv_fast

    async def main() -> None:
        for _ in range(1000):
            await link.send_gate(1 << 20)
            await link.recv_gate(1 << 20)

    run(main())
    link.update(latency_ms=1)
    assert not link._recv_fast
    link.update(latency_ms=0)
    assert link._recv_fast


def test_update_validates_and_reports() -> None:
    link = LinkEmulator(up_bps=1000)
    assert link.update(down_bps="10mbit", loss=0.1)["down_bps"] == 10_000_000
    assert link.as_dict() == {
        "up_bps": 1000,
        "down_bps": 10_000_000,
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "loss": 0.1,
    }
    for bad in ({"loss": 2}, {"latency_ms": -1}, {"up_bps": 0}, {"speed": 1}, {"loss": "x"}):
        with pytest.raises(ValueError):
            link.update(**bad)
    assert link.as_dict()["loss"] == 0.1  # nothing applied from a rejected update
    assert link.update(up_bps=None)["up_bps"] is None


def test_blocklist() -> None:
    link = LinkEmulator()
    changes: list[int] = []
    link.on_block_change = lambda: changes.append(1)
    assert not link.blocked("leechers-0", "127.0.0.1", 6881)
    state = link.set_blocklist({"leechers-1"}, {"10.0.0.5", "127.0.0.1:7001", "[::1]:9"})
    assert state == {"nodes": ["leechers-1"], "addrs": ["10.0.0.5", "127.0.0.1:7001", "[::1]:9"]}
    assert changes == [1]
    assert link.blocked("leechers-1", "127.0.0.9", 1)
    assert link.blocked(None, "10.0.0.5", 1234)
    assert link.blocked("", "127.0.0.1", 7001)
    assert not link.blocked("", "127.0.0.1", 7002)
    assert link.blocked(None, "::1", 9)
    assert not link.blocked("leechers-2", "10.0.0.6", None)
    with pytest.raises(ValueError):
        link.set_blocklist(set(), {"1.2.3.4:http"})
    link.set_blocklist(set(), set())
    assert not link.blocked("leechers-1", "10.0.0.5", 1)
    assert changes == [1, 1]


def test_token_bucket_rejects_bad_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


async def _socket_pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Server]:
    """A reader on a real loopback connection and the writer feeding it."""
    accepted: asyncio.Future[asyncio.StreamReader] = asyncio.get_running_loop().create_future()

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.set_result(r)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    return await asyncio.wait_for(accepted, 5), writer, server


def test_watched_reader_delays_each_message_from_its_arrival() -> None:
    """A delay line: a burst costs one latency, and a message that arrives later (a
    response) is delayed from its own arrival, not let through as part of the burst."""

    async def main() -> tuple[float, float, float]:
        link = LinkEmulator(latency_ms=80)
        reader, writer, server = await _socket_pair()
        results: list[float] = []

        async def read_loop() -> None:
            link.watch(reader)
            for _ in range(21):
                await reader.readexactly(1000)
                await link.recv_gate(1000)
                results.append(now())

        task = asyncio.ensure_future(read_loop())
        start = now()
        writer.write(b"x" * 20_000)  # a burst of 20 messages
        await writer.drain()
        while len(results) < 20:
            await asyncio.sleep(0.001)
        burst_done = results[19] - start
        # The "response": sent right after the burst was delivered.
        sent = now()
        writer.write(b"y" * 1000)
        await writer.drain()
        await asyncio.wait_for(task, 5)
        writer.close()
        server.close()
        return results[0] - start, burst_done, results[20] - sent

    first, burst, response = run(main())
    assert first == pytest.approx(0.080, abs=0.002), first
    assert burst < 0.09, burst  # pipelined, not 20 x 80 ms
    assert response == pytest.approx(0.080, abs=0.002), response


def test_watched_reader_keeps_order_under_jitter() -> None:
    async def main() -> list[float]:
        link = LinkEmulator(latency_ms=30, jitter_ms=25, rng=random.Random(1))
        reader, writer, server = await _socket_pair()
        times: list[float] = []

        async def read_loop() -> None:
            link.watch(reader)
            for _ in range(30):
                await reader.readexactly(100)
                await link.recv_gate(100)
                times.append(now())

        task = asyncio.ensure_future(read_loop())
        for _ in range(30):
            writer.write(b"z" * 100)
            await writer.drain()
            await asyncio.sleep(0.003)
        await asyncio.wait_for(task, 10)
        writer.close()
        server.close()
        return times

    times = run(main())
    assert times == sorted(times)
