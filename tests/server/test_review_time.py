"""A review whose planning is slow: out-of-time denials and the event loop."""

from __future__ import annotations

import asyncio
import logging
import time

from tests.server.test_pipeline_cache import review
from tests.server.test_secret_limit import SlowResolver
from webhook.admission.injection import InjectionOptions
from webhook.server.logs import bind
from webhook.server.pipeline import ReviewPipeline

LOG = bind(logging.getLogger(__name__), {})


def test_deadline_passed_before_lookups_blames_the_time_not_the_api() -> None:
    resolver = SlowResolver()
    pipeline = ReviewPipeline(InjectionOptions(), [resolver])

    decision = asyncio.run(
        pipeline(review("db-creds,username"), time.monotonic() - 1, LOG)
    )

    assert not decision.allowed
    assert decision.code == 503
    assert "ran out of time" in decision.message
    assert "Kubernetes API" not in decision.message
    assert "retrying the request is safe" in decision.message
    assert resolver.calls == 0
