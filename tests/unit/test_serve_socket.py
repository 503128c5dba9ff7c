"""The socket `sre-agent serve` binds itself: accepted connections get TCP_NODELAY.

Without it (a socket made with proto 0, which asyncio does not recognise as TCP), Nagle held
each keep-alive response's body until the client's delayed ACK: ~40 ms more per webhook."""

from __future__ import annotations

import asyncio
import socket

from sre_agent.cli.serve import bind_socket


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
