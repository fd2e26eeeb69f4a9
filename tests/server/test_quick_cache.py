"""/mutate with and without the quick path, on the service's own cache.

Two endpoints, each with its own `SecretKeyLookups`, a fake clock and a
key source, get the same reviews at the same times. For every cache state
here both must send the same bytes, make the same API calls and count the
same lookups and reviews, whether the quick path responds or steps aside.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from webhook.admission.injection import InjectionOptions
from webhook.admission.lookups import SecretLookup
from webhook.admission.quick import PodReview, QuickAnswer
from webhook.admission.reviews import Review
from webhook.kube.lookups import SecretKeyLookups
from webhook.server.app import create_app
from webhook.server.metrics import LOOKUP_RESULTS, new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.pipeline import build_reviewer
from webhook.server.readiness import Readiness

from .test_pipeline_cache import review

TTL_SECONDS = 5.0
JSON = {"Content-Type": "application/json"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class KeySource:
    """Finds each secret in `keys` with its key names, and records each call."""

    def __init__(self) -> None:
        self.keys = {"db": {"username", "password"}, "s3": {"token"}}
        self.calls: list[str] = []

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        self.calls.append(name)
        keys = self.keys.get(name)
        if keys is None:
            return SecretLookup.not_found()
        return SecretLookup.found(frozenset(keys))


class Service:
    """One endpoint on its own cache, clock and key source."""

    def __init__(self, executor: ThreadPoolExecutor, quick: bool) -> None:
        self.clock = FakeClock()
        self.source = KeySource()
        self.metrics = new_metrics()
        self.quick_answers: list[bool] = []
        lookups = SecretKeyLookups(
            self.source,
            executor,
            TTL_SECONDS,
            self.metrics.count_lookup,
            clock=self.clock,
        )
        reviewer = build_reviewer(InjectionOptions(), lookups)

        def recorded_quick(review: PodReview) -> QuickAnswer | None:
            answer = reviewer.quick(review)
            self.quick_answers.append(answer is not None)
            return answer

        endpoint = MutateEndpoint(
            reviewer, self.metrics, quick=recorded_quick if quick else None
        )
        readiness = Readiness(
            source_answered=lambda: True, certificate_ready=lambda: True
        )
        app = create_app(endpoint, readiness, self.metrics)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://webhook.test"
        )

    async def send(self, document: Review) -> bytes:
        response = await self.client.post(
            "/mutate", content=orjson.dumps(document), headers=JSON
        )
        return response.content

    def lookup_counts(self) -> dict[str, float | None]:
        return {
            result: self.metrics.registry.get_sample_value(
                "runai_secrets_webhook_secret_lookups_total", {"result": result}
            )
            for result in LOOKUP_RESULTS
        }

    def review_counts(self) -> dict[tuple[tuple[str, str], ...], float]:
        """Map the labels of each reviews_total sample to its value."""
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for family in self.metrics.reviews.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }


# Each case: the seconds that pass after a review of db,username filled the
# cache, the key names the source has for "db" after that, the references
# of the second review, and whether the quick path responds to it.
CASES = {
    "fresh": (4.9, {"username", "password"}, ("db,username",), True),
    "expired at ttl": (5.0, {"username", "password"}, ("db,username",), False),
    "key added since": (1.0, {"username", "new"}, ("db,new",), False),
    "one secret cached": (1.0, {"username"}, ("db,username", "s3,token"), False),
    "key removed since": (1.0, set(), ("db,password",), True),
}


@pytest.mark.parametrize(
    ("wait", "db_keys", "second", "quick_responds"),
    CASES.values(),
    ids=CASES.keys(),
)
async def test_quick_same_as_pipeline(
    wait: float,
    db_keys: set[str],
    second: tuple[str, ...],
    quick_responds: bool,
) -> None:
    executor = ThreadPoolExecutor(2)
    services = [Service(executor, quick=False), Service(executor, quick=True)]
    responses = []
    for service in services:
        async with service.client:
            await service.send(review("db,username"))
            service.clock.now += wait
            service.source.keys["db"] = db_keys
            responses.append(await service.send(review(*second)))
    executor.shutdown()
    full, quick = services

    assert quick.quick_answers == [False, quick_responds]
    assert responses[1] == responses[0]
    assert quick.source.calls == full.source.calls
    assert quick.lookup_counts() == full.lookup_counts()
    assert quick.review_counts() == full.review_counts()


async def test_expired_entry_refetched_once() -> None:
    """An entry the quick path finds expired is dropped by the pipeline after it."""
    executor = ThreadPoolExecutor(2)
    service = Service(executor, quick=True)
    async with service.client:
        await service.send(review("db,username"))
        service.clock.now += TTL_SECONDS
        await service.send(review("db,username"))
        third = await service.send(review("db,username"))
    executor.shutdown()

    assert service.source.calls == ["db", "db"]
    assert service.quick_answers == [False, False, True]
    assert orjson.loads(third)["response"]["allowed"] is True
    assert service.lookup_counts()["cached"] == 1
