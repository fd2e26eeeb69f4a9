"""One review from plan to decision: the admission logic plus live lookups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import yaml

from webhook.admission.additions import EnvAddition
from webhook.admission.decisions import Decision, deny, from_denied
from webhook.admission.errors import Denied
from webhook.admission.injection import (
    CODE_UNAVAILABLE,
    InjectionOptions,
    OnMissing,
    Plan,
    decide,
    plan_review,
)
from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.admission.messages import out_of_time_message
from webhook.admission.podspecs import WorkloadKind, load_workload_kinds
from webhook.admission.quick import Confirm, PodReview, QuickAnswer, quick_response
from webhook.admission.reviews import Review
from webhook.kube.config import MAX_CONCURRENT_CALLS
from webhook.kube.lookups import (
    CachedResolver,
    Resolver,
    SecretKeyLookups,
    resolve_in_order,
)
from webhook.propagation.clusterwide import ClusterWideLookups
from webhook.server import offload
from webhook.server.logs import BoundLogger
from webhook.settings import ServeSettings
from webhook.templates.service import TemplateService

# Lookups of one review that run at once: as many as the API calls that one
# process makes at once.
MAX_CONCURRENT_LOOKUPS = MAX_CONCURRENT_CALLS

# Lookup results logged as errors, because the API gave no usable response.
FAILED = frozenset({LookupStatus.FORBIDDEN, LookupStatus.TIMEOUT, LookupStatus.ERROR})


KINDS_FILE_FIX = (
    "pass a readable YAML file with a list under 'kinds' of group, version, "
    "kind and podSpecs, as in examples/workload-kinds.yaml"
)


def load_extra_kinds(path: str | None) -> tuple[WorkloadKind, ...]:
    """Read the workload kinds file, if one is configured.

    Raises `ValueError` naming the flag, the path, the problem and the fix,
    so that `serve` stops with one log line instead of a traceback.
    """
    if not path:
        return ()
    try:
        with Path(path).open(encoding="utf-8") as stream:
            return load_workload_kinds(yaml.safe_load(stream))
    except OSError as error:
        problem = f"cannot be read: {error.strerror}"
    except yaml.YAMLError as error:
        # The parser's message spans several lines, so it is joined into one.
        problem = "is not valid YAML: " + " ".join(str(error).split())
    except ValueError as error:
        problem = str(error)
    raise ValueError(
        f"--workload-kinds-file {path}: {problem}; {KINDS_FILE_FIX}"
    ) from None


def injection_options(settings: ServeSettings) -> InjectionOptions:
    """Build the admission options, raising `ValueError` for an invalid setting."""
    # InjectionOptions rejects any other value, so an unknown one such as
    # "Warn" fails at start instead of acting as "deny".
    return InjectionOptions(
        annotation_prefix=settings.annotation_prefix,
        on_missing=cast(OnMissing, settings.on_missing),
        extra_kinds=load_extra_kinds(settings.workload_kinds_file),
    )


class ReviewPipeline:
    """Plan a review, look up its secrets concurrently, decide.

    `resolvers` are asked in order for each secret; the first looks in the
    review's namespace, later ones may look elsewhere (cluster-wide secrets).
    With `templates`, their env vars are added to the review's object.
    `cached`, when given, is asked first: secrets it returns are not looked up.
    With `cluster_wide`, a secret no resolver found is looked up last among
    the cluster-wide secrets. Their copies are written only after `decide`,
    when the review is allowed and is not a dry run, so a denied review
    writes nothing. With `confirm`, `quick` responds to the usual Pod CREATE
    whose secrets are all cached (see `webhook.admission.quick`).
    """

    def __init__(
        self,
        options: InjectionOptions,
        resolvers: list[Resolver],
        templates: TemplateService | None = None,
        cached: CachedResolver | None = None,
        cluster_wide: ClusterWideLookups | None = None,
        confirm: Confirm | None = None,
    ) -> None:
        self.options = options
        self.resolvers = resolvers
        self.templates = templates
        self.cached = cached
        self.cluster_wide = cluster_wide
        self.confirm = confirm

    @property
    def quick_enabled(self) -> bool:
        """Whether `quick` may respond, which needs `confirm` and no templates.

        Templates may add env vars to any object, so with templates every
        review takes the pipeline.
        """
        return self.confirm is not None and self.templates is None

    def quick(self, review: PodReview) -> QuickAnswer | None:
        """Return the response of the quick path, or None to call the pipeline."""
        if self.confirm is None or self.templates is not None:
            return None
        return quick_response(review, self.options, self.confirm)

    async def __call__(
        self, review: Review, deadline: float, log: BoundLogger
    ) -> Decision:
        if self.templates is None:
            return await self._review(review, (), deadline, log)

        request = review["request"]
        try:
            selection = self.templates.select(request, self.options)
        except Denied as error:
            return from_denied(error)
        decision = await self._review(review, selection.additions, deadline, log)
        return self.templates.report(request, decision, selection, log)

    async def _review(
        self,
        review: Review,
        additions: Sequence[EnvAddition],
        deadline: float,
        log: BoundLogger,
    ) -> Decision:
        large = offload.body_bytes.get() > offload.LARGE_BODY_BYTES
        if large:
            planned = await asyncio.to_thread(
                plan_review, review, self.options, additions
            )
        else:
            planned = plan_review(review, self.options, additions)
        if isinstance(planned, Decision):
            return planned

        grouped = planned.keys
        lookups = self._from_cache(planned.namespace, grouped)
        if len(lookups) < len(grouped):
            if time.monotonic() >= deadline:
                # Planning took the whole budget: no lookup was tried, so the
                # Kubernetes API is not to blame.
                return deny(CODE_UNAVAILABLE, out_of_time_message(planned.subject))
            await self._look_up(planned, lookups, deadline)
            self._log_failures(lookups, log)
        if large:
            decision = await asyncio.to_thread(decide, planned, lookups)
        else:
            decision = decide(planned, lookups)
        if self.cluster_wide is not None:
            await self._write_copies(review, planned, lookups, decision, deadline, log)
        return decision

    async def _look_up(
        self, planned: Plan, lookups: dict[str, SecretLookup], deadline: float
    ) -> None:
        """Look up the secrets that `lookups` lacks, adding their results."""
        grouped = planned.keys
        missing = sorted(secret for secret in grouped if secret not in lookups)
        resolvers = self._resolvers()
        # Bounds the lookups of one review that run at once, so that one
        # object with many secrets cannot take every API connection.
        slots = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

        async def resolve(secret: str) -> SecretLookup:
            async with slots:
                return await resolve_in_order(
                    resolvers, planned.namespace, secret, grouped[secret], deadline
                )

        answers = await asyncio.gather(*(resolve(secret) for secret in missing))
        lookups.update(zip(missing, answers, strict=True))

    def _resolvers(self) -> list[Resolver]:
        if self.cluster_wide is None:
            return self.resolvers
        return [*self.resolvers, self.cluster_wide.lookup]

    async def _write_copies(
        self,
        review: Review,
        planned: Plan,
        lookups: dict[str, SecretLookup],
        decision: Decision,
        deadline: float,
        log: BoundLogger,
    ) -> None:
        """Copy the cluster-wide secrets an allowed, real review relies on."""
        cluster_wide = self.cluster_wide
        # A dry run must write nothing, and a denied review changes nothing.
        if (
            cluster_wide is None
            or not decision.allowed
            or review["request"].get("dryRun", False)
        ):
            return
        names = [
            secret
            for secret, lookup in lookups.items()
            if lookup.status is LookupStatus.FOUND
            and lookup.namespace == cluster_wide.source_namespace
            and lookup.namespace != planned.namespace
            and lookup.keys.issuperset(planned.keys[secret])
        ]
        if names:
            await cluster_wide.write_copies(planned.namespace, names, deadline, log)

    def _from_cache(
        self, namespace: str, grouped: Mapping[str, set[str]]
    ) -> dict[str, SecretLookup]:
        cached = self.cached
        return {} if cached is None else cached(namespace, grouped)

    @staticmethod
    def _log_failures(lookups: dict[str, SecretLookup], log: BoundLogger) -> None:
        for secret, lookup in lookups.items():
            if lookup.status in FAILED:
                log.error(
                    "secret lookup failed",
                    extra={
                        "secret": secret,
                        "result": lookup.status.value,
                        "detail": lookup.detail,
                    },
                )


def build_reviewer(
    options: InjectionOptions,
    lookups: SecretKeyLookups,
    templates: TemplateService | None = None,
    cluster_wide: ClusterWideLookups | None = None,
) -> ReviewPipeline:
    """Build the reviewer that /mutate calls for every parsed review."""
    return ReviewPipeline(
        options,
        [lookups.lookup],
        templates,
        lookups.cached_all,
        cluster_wide,
        lookups.confirm_all,
    )
