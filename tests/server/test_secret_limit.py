"""The limit of distinct secrets per review and bounded lookup concurrency."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from tests.server.test_pipeline_cache import review
from webhook.admission.injection import InjectionOptions
from webhook.admission.lookups import SecretLookup
from webhook.admission.scanning import MAX_SECRETS_PER_REVIEW
from webhook.server.logs import bind
from webhook.server.pipeline import MAX_CONCURRENT_LOOKUPS, ReviewPipeline


class SlowResolver:
    """Find every secret after a short wait, recording how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.max_running = 0
        self.calls = 0

    async def __call__(
        self, namespace: str, name: str, keys: Collection[str], deadline: float
    ) -> SecretLookup:
        self.calls += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        await asyncio.sleep(0.001)
        self.running -= 1
        return SecretLookup.found(frozenset(keys))


def decide_for(count: int, resolver: SlowResolver) -> tuple[bool, str]:
    references = [f"s{number},k" for number in range(count)]
    pipeline = ReviewPipeline(InjectionOptions(), [resolver])
    log = bind(logging.getLogger(__name__), {})
    decision = asyncio.run(pipeline(review(*references), time.monotonic() + 10, log))
    return decision.allowed, decision.message


def test_secrets_over_limit_denied_without_lookups() -> None:
    resolver = SlowResolver()

    allowed, message = decide_for(3000, resolver)

    assert not allowed
    assert f"more than {MAX_SECRETS_PER_REVIEW} different secrets" in message
    assert f"limit of {MAX_SECRETS_PER_REVIEW}" in message
    assert resolver.calls == 0


def test_secrets_at_limit_allowed() -> None:
    resolver = SlowResolver()

    allowed, _ = decide_for(MAX_SECRETS_PER_REVIEW, resolver)

    assert allowed
    assert resolver.calls == MAX_SECRETS_PER_REVIEW


def test_lookups_run_with_bounded_concurrency() -> None:
    resolver = SlowResolver()

    decide_for(100, resolver)

    assert resolver.calls == 100
    assert resolver.max_running == MAX_CONCURRENT_LOOKUPS
