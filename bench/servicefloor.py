"""The service with the `minimal` floor's handler in place of /mutate.

    python -m bench.servicefloor SERVE-OPTIONS...

Runs `python -m webhook serve SERVE-OPTIONS...` in one process (no
`--workers`) after one swap: the /mutate
endpoint that `serve` builds is replaced by the handler of the `minimal`
floor server (`bench.floors`), which checks this benchmark's references
against a table in memory. Everything else is the service: its process,
its app with the in-flight limit, its secret cache, metrics, certificate
reload and the lookups it starts with. Its distance from the `minimal` floor
server is what the service around a handler costs. The webhook's distance
from it is what the webhook's handler costs beyond the leanest one we
wrote. `bench.ceiling` runs it as `service-minimal`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from bench.asgi import ASGIApp
from bench.floors import benchmark_keys, minimal_app
from webhook import cli
from webhook.server import runner


def floor_endpoint(*_args: Any, **_kwargs: Any) -> ASGIApp:
    """Stand in for `MutateEndpoint(...)`: return the `minimal` floor's app."""
    return minimal_app(benchmark_keys())


def main(argv: Sequence[str] | None = None) -> int:
    options = list(sys.argv[1:] if argv is None else argv)
    if any(option.startswith("--workers") for option in options):
        # Workers start as new processes that import the runner afresh, so
        # they would serve the webhook's own handler under this name.
        print(
            "bench.servicefloor: --workers is not supported, because worker "
            "processes would serve the webhook's own handler; run one process",
            file=sys.stderr,
        )
        return 2
    # `serve` builds its endpoint from the name it imported into the runner.
    setattr(runner, "MutateEndpoint", floor_endpoint)  # noqa: B010
    return cli.main(["serve", *options])


if __name__ == "__main__":
    raise SystemExit(main())
