"""Drives a real Kiln server with gql's websockets transport over
graphql-transport-ws. Run by TestInteropClients in server/interop_test.go:

    .venv/bin/python client.py ws://127.0.0.1:PORT/graphql ACCESS_TOKEN

Prints on stdout, one line each:
    {"badTokenClose": 4403}   the close code for a refused token
    ready                     subscribed: the test may now create 3 posts
    {"events": [...]}         the 3 postCreated payloads, in arrival order
"""

import asyncio
import json
import sys

import websockets.exceptions
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

SUBSCRIPTION = "subscription { postCreated { id body } }"


def transport(url, token):
    return WebsocketsTransport(
        url=url,
        init_payload={"accessToken": token},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_timeout=10,
        ack_timeout=10,
        close_timeout=5,
    )


def close_code(exc):
    """The close code of the websockets ConnectionClosed behind exc, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, websockets.exceptions.ConnectionClosed):
            return exc.rcvd.code if exc.rcvd is not None else None
        exc = exc.__cause__ or exc.__context__
    return None


async def bad_token(url):
    """A refused token: the server closes with 4403 at connection_init."""
    try:
        async with Client(transport=transport(url, "not-a-token")) as session:
            async for _ in session.subscribe(gql(SUBSCRIPTION)):
                return "unexpected data"
    except Exception as exc:  # gql wraps the close in TransportConnectionFailed
        code = close_code(exc)
        return code if code is not None else repr(exc)
    return "unexpected success"


async def three_events(url, token):
    t = transport(url, token)
    async with Client(transport=t) as session:
        events = []

        async def consume():
            async for result in session.subscribe(gql(SUBSCRIPTION)):
                events.append(result["postCreated"])
                if len(events) == 3:
                    return  # closing the session then sends complete

        task = asyncio.ensure_future(consume())
        # graphql-transport-ws has no acknowledgement for subscribe: wait
        # until gql has sent the subscribe frame, then ping. The server reads
        # messages in order, so its pong means it has taken the subscription.
        while not t.listeners and not task.done():
            await asyncio.sleep(0.005)
        if task.done():
            task.result()  # raises what went wrong
            raise RuntimeError("subscription ended before it started")
        t.pong_received.clear()
        await t.send_ping()
        await asyncio.wait_for(t.pong_received.wait(), 10)
        print("ready", flush=True)
        await task
        return events


async def main(url, token):
    print(json.dumps({"badTokenClose": await bad_token(url)}), flush=True)
    events = await three_events(url, token)
    print(json.dumps({"events": events}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: client.py WS_URL ACCESS_TOKEN", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 25))
    except asyncio.TimeoutError:
        print("interop: timed out", file=sys.stderr)
        sys.exit(3)
