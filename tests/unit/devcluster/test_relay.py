from __future__ import annotations

import asyncio
import contextlib

from devcluster.cluster import free_ports
from devcluster.relay import serve


async def _round_trip() -> bytes:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    target_port, relay_port = free_ports(2)
    target = await asyncio.start_server(echo, "127.0.0.1", target_port)
    relay = asyncio.create_task(serve(("127.0.0.1", relay_port), ("127.0.0.1", target_port)))
    try:
        for _ in range(100):  # until the relay listens
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", relay_port)
                break
            except OSError:
                await asyncio.sleep(0.02)
        writer.write(b"\x16\x03\x01 bytes, unchanged")
        await writer.drain()
        answer = await reader.read(100)
        writer.close()
        return answer
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        target.close()


def test_the_relay_carries_bytes_both_ways_unchanged() -> None:
    assert asyncio.run(_round_trip()) == b"\x16\x03\x01 bytes, unchanged"
