"""A lookup that waits for a thread until the deadline is worded as out of time.

The service makes its API calls from a pool of 16 threads. When slow calls
hold every thread, a new review's lookup waits in the queue until the
review's deadline and never reaches the API. Its 503 denial must state that
the review's time ran out before the webhook could call the API, and must
not blame the API for a slow response.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.reliability.calls import Reply, pod_review, post_review
from tests.reliability.cluster import TEAM_A, pod
from webhook.kube.config import MAX_CONCURRENT_CALLS as LOOKUP_THREADS

# Long enough that the slow calls still hold every thread when the queued
# review's one-second budget runs out.
HOG_LATENCY_SECONDS = 3.0


def wait_for_calls(kube: FakeKube, count: int, seconds: float) -> None:
    """Wait until the fake API has logged `count` secret GETs, for `seconds` at most."""
    end = time.monotonic() + seconds
    while kube.count(verb="get", resource="secrets") < count:
        assert time.monotonic() < end, "the slow lookups never reached the API"
        time.sleep(0.02)


def test_queued_lookup_denial_wording(kube: FakeKube, service: WebhookService) -> None:
    kube.add_fault(
        resource="secrets", path=r"/secrets/hog-", latency=HOG_LATENCY_SECONDS
    )

    def hog(index: int) -> Reply:
        review = pod_review(pod(f"SECRET:hog-{index},k"), TEAM_A)
        return post_review(service, review, timeout_parameter="10s")

    with ThreadPoolExecutor(LOOKUP_THREADS) as pool:
        hogs = [pool.submit(hog, index) for index in range(LOOKUP_THREADS)]
        wait_for_calls(kube, LOOKUP_THREADS, seconds=2.0)
        # Every lookup thread now waits on the API, so this lookup has to queue.
        reply = post_review(
            service, pod_review(pod("SECRET:db,password"), TEAM_A), "1s"
        )
        hog_replies = [future.result() for future in hogs]

    assert [answer.status for answer in hog_replies] == [200] * LOOKUP_THREADS
    assert reply.status == 200
    assert reply.seconds < 1.0
    response = reply.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 503
    message = response["status"]["message"]
    assert 'secret "db" in namespace "team-a"' in message
    assert "the review's time ran out before the webhook could call" in message
    assert "did not answer in time" not in message
    assert "retrying the request is safe" in message
    # The queued lookup gave up before a thread was free, so "db" was never read.
    assert kube.count(verb="get", resource="secrets", name="db") == 0
