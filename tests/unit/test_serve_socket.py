"""What `sre-agent serve` sets up itself: the socket it binds (accepted connections get
TCP_NODELAY) and the garbage collector's settings.

Without TCP_NODELAY (a socket made with proto 0, which asyncio does not recognise as TCP),
Nagle held each keep-alive response's body until the client's delayed ACK: ~40 ms more per
webhook."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
from collections.abc import Iterator

import pytest

from sre_agent.cli.serve import bind_socket, tune_gc, tune_switch_interval


async def test_accepted_connections_have_tcp_nodelay() -> None:
    sock = bind_socket("127.0.0.1", 0)
    seen: list[int] = []

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        _reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert seen and seen[0] != 0


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave the garbage collector of the test process as it was found."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_tune_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    tune_gc(50_000)
    assert gc.get_threshold() == (50_000, 10, 10)  # the older generations keep theirs
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("collector")
def test_tune_gc_zero_leaves_cpythons_collector() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_tune_switch_interval_sets_the_gils_and_zero_leaves_cpythons() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        tune_switch_interval(0)
        assert sys.getswitchinterval() == pytest.approx(0.005)
        tune_switch_interval(0.001)
        assert sys.getswitchinterval() == pytest.approx(0.001)
    finally:
        sys.setswitchinterval(before)
