"""Cold path: concurrent reviews of a never-seen secret share one API call.

A new secret is created in the fake Kubernetes API with a delay on its GET,
so that every review arrives while the first lookup is still in flight. The
calls are counted at the fake API server.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson

from bench import bodies
from bench.services import Stack
from bench.throughput import MUTATE_PATH

CONCURRENT_REVIEWS = 100
# Long enough for all reviews to reach the webhook before the API responds.
API_LATENCY_SECONDS = 0.5


def review_for(secret: str) -> bytes:
    pod = bodies.training_pod()
    pod["spec"]["containers"][1]["env"].append(
        bodies.env_var("COLD_TOKEN", f"SECRET:{secret},token")
    )
    return bodies.encode(bodies.review_of(pod))


async def send_all(stack: Stack, body: bytes) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=CONCURRENT_REVIEWS)
    async with httpx.AsyncClient(
        verify=stack.tls_context(), limits=limits, timeout=30.0
    ) as client:
        # Open the connections first, so the reviews start together.
        await asyncio.gather(
            *(
                client.get(stack.ours.url + "/healthz")
                for _ in range(CONCURRENT_REVIEWS)
            )
        )
        url = stack.ours.url + MUTATE_PATH
        headers = {"Content-Type": "application/json"}
        responses = await asyncio.gather(
            *(
                client.post(url, content=body, headers=headers)
                for _ in range(CONCURRENT_REVIEWS)
            )
        )
    return [orjson.loads(response.content)["response"] for response in responses]


def measure(stack: Stack) -> dict[str, Any]:
    """Send the concurrent reviews and count the GETs of the new secret."""
    secret = f"cold-{uuid.uuid4().hex[:8]}"
    stack.kube.add_secret(bodies.NAMESPACE, secret, {"token": "placeholder"})
    stack.kube.add_fault(
        verb="get", resource="secrets", name=secret, latency=API_LATENCY_SECONDS
    )
    answers = asyncio.run(send_all(stack, review_for(secret)))
    calls = stack.kube.count(verb="get", resource="secrets", name=secret)
    patched = sum(1 for answer in answers if answer["allowed"] and "patch" in answer)
    return {
        "reviews": len(answers),
        "patched": patched,
        "api_calls": calls,
        "api_latency_s": API_LATENCY_SECONDS,
    }
