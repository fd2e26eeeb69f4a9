"""The benchmark's review bodies: the shape the benchmark claims."""

from __future__ import annotations

import orjson

from bench import bodies


def env_values(pod: dict[str, object]) -> list[str]:
    spec = pod["spec"]
    assert isinstance(spec, dict)
    containers = spec["initContainers"] + spec["containers"]
    return [entry["value"] for container in containers for entry in container["env"]]


def test_training_review_shape() -> None:
    body = bodies.training_review()
    review = orjson.loads(body)
    pod = review["request"]["object"]
    values = env_values(pod)
    references = [value for value in values if value.startswith("SECRET:")]

    assert 3500 <= len(body) <= 5000
    assert len(pod["spec"]["initContainers"]) == 1
    assert len(pod["spec"]["containers"]) == 2
    assert len(values) == 20
    assert len(references) == 5


def test_training_review_secrets_exist() -> None:
    pod = orjson.loads(bodies.training_review())["request"]["object"]

    for value in env_values(pod):
        if value.startswith("SECRET:"):
            secret, key = value.removeprefix("SECRET:").split(",")
            assert key in bodies.SECRETS[secret]


def test_pod_with_env_counts() -> None:
    pod = bodies.pod_with_env(1000)
    env = pod["spec"]["containers"][0]["env"]
    references = [entry for entry in env if entry["value"].startswith("SECRET:")]

    assert len(env) == 1000
    assert len(references) == 100


def test_pod_of_size_is_near_target() -> None:
    target = 3 * 1024 * 1024
    body = bodies.encode(bodies.review_of(bodies.pod_of_size(target)))

    assert 0.98 * target <= len(body) <= target
