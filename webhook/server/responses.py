"""JSON responses sent over raw ASGI, for the routes that bypass FastAPI."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Send

_JSON_TYPE = b"application/json"


async def send_json(
    send: Send,
    status: int,
    content: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send `content`, already encoded JSON, with `status` and extra `headers`."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _JSON_TYPE),
                (b"content-length", b"%d" % len(content)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
