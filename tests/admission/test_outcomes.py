"""Decisions from lookup results: allowed, denied with a message, or warned."""

from webhook.admission import InjectionOptions, LookupStatus, SecretLookup

from .builders import apply, container, env, pod, review, run, secret_env

ONE_REF = pod(container("app", env("DB_PASS", "SECRET:db-creds,password")))
WARN = InjectionOptions(on_missing="warn")


def test_missing_secret_is_denied() -> None:
    decision = run(review(ONE_REF), {"db-creds": SecretLookup.not_found()})
    assert not decision.allowed
    assert decision.code == 403
    assert decision.message == (
        'Pod "train": Secret "db-creds" was not found in namespace "runai-team-a". '
        'It is used by env var "DB_PASS" in container "app" with key "password". '
        'Create the secret in namespace "runai-team-a" or fix the secret name in '
        "the reference."
    )
    assert decision.patch == ()


def test_missing_key_is_denied_without_other_keys() -> None:
    lookups = {"db-creds": SecretLookup.found({"username", "s3cr3t-key-name"})}
    decision = run(review(ONE_REF), lookups)
    assert not decision.allowed
    assert decision.code == 403
    assert decision.message == (
        'Pod "train": Secret "db-creds" in namespace "runai-team-a" has no key '
        '"password". It is used by env var "DB_PASS" in container "app". Add key '
        '"password" to the secret or fix the key in the reference.'
    )
    assert "username" not in decision.message
    assert "s3cr3t-key-name" not in decision.message


def test_forbidden_names_rbac_rule() -> None:
    detail = 'secrets "db-creds" is forbidden'
    lookups = {"db-creds": SecretLookup.failed(LookupStatus.FORBIDDEN, detail)}
    decision = run(review(ONE_REF), lookups)
    assert not decision.allowed
    assert decision.code == 500
    assert "not found" not in decision.message
    assert decision.message == (
        'Pod "train": The webhook could not check secret "db-creds" in namespace '
        '"runai-team-a" because its service account may not read secrets there '
        '("secrets \\"db-creds\\" is forbidden"). It is used by env var "DB_PASS" in '
        'container "app" with key "password". A cluster admin must grant the '
        'webhook\'s service account the RBAC rule apiGroups [""], resources '
        '["secrets"], verbs ["get"] in namespace "runai-team-a".'
    )


def test_timeout_is_retryable() -> None:
    lookups = {"db-creds": SecretLookup.failed(LookupStatus.TIMEOUT, "")}
    decision = run(review(ONE_REF), lookups)
    assert decision.code == 503
    assert decision.message == (
        'Pod "train": The webhook could not check secret "db-creds" in namespace '
        '"runai-team-a" because the Kubernetes API did not answer in time. It is used '
        'by env var "DB_PASS" in container "app" with key "password". Nothing was '
        "changed, so retrying the request is safe."
    )


def test_timeout_before_api_call_blames_no_api() -> None:
    detail = "no time was left before the review's deadline"
    lookups = {
        "db-creds": SecretLookup.failed(LookupStatus.TIMEOUT, detail, api_called=False)
    }
    decision = run(review(ONE_REF), lookups)
    assert decision.code == 503
    assert "did not answer" not in decision.message
    assert decision.message == (
        'Pod "train": The webhook could not check secret "db-creds" in namespace '
        '"runai-team-a" because the review\'s time ran out before the webhook could '
        'call the Kubernetes API ("no time was left before the review\'s deadline"). '
        'It is used by env var "DB_PASS" in container "app" with key "password". '
        "Nothing was changed, so retrying the request is safe."
    )


def test_api_error_is_retryable() -> None:
    lookups = {
        "db-creds": SecretLookup.failed(LookupStatus.ERROR, "HTTP 500 from the API")
    }
    decision = run(review(ONE_REF), lookups)
    assert decision.code == 503
    assert decision.message == (
        'Pod "train": The webhook could not check secret "db-creds" in namespace '
        '"runai-team-a" because the Kubernetes API failed ("HTTP 500 from the API"). '
        'It is used by env var "DB_PASS" in container "app" with key "password". '
        "Nothing was changed, so retrying the request is safe."
    )


def test_secret_without_lookup_result_is_retryable() -> None:
    decision = run(review(ONE_REF), {})
    assert decision.code == 503
    assert '("no lookup result for this secret")' in decision.message


def test_missing_wins_over_failures() -> None:
    obj = pod(
        container(
            "app", env("A", "SECRET:db-creds,password"), env("B", "SECRET:api,token")
        )
    )
    lookups = {
        "db-creds": SecretLookup.not_found(),
        "api": SecretLookup.failed(LookupStatus.TIMEOUT, ""),
    }
    decision = run(review(obj), lookups)
    assert decision.code == 403
    assert '"api"' not in decision.message


def test_forbidden_wins_over_timeout() -> None:
    obj = pod(
        container(
            "app", env("A", "SECRET:db-creds,password"), env("B", "SECRET:api,token")
        )
    )
    lookups = {
        "db-creds": SecretLookup.failed(LookupStatus.TIMEOUT, ""),
        "api": SecretLookup.failed(LookupStatus.FORBIDDEN, ""),
    }
    assert run(review(obj), lookups).code == 500


def test_missing_secret_grouped_across_keys_and_places() -> None:
    obj = pod(
        container(
            "app",
            env("U", "SECRET:db-creds,username"),
            env("P", "SECRET:db-creds,password"),
        ),
        container("side", env("U", "SECRET:db-creds,username")),
        container("third", env("X", "SECRET:db-creds,x")),
        container("fourth", env("Y", "SECRET:db-creds,y")),
    )
    message = run(review(obj), {"db-creds": SecretLookup.not_found()}).message
    assert message.count("was not found") == 1
    assert (
        'It is used by env var "U" in container "app" with key "username", env var '
        '"P" in container "app" with key "password", env var "U" in container "side" '
        'with key "username", 2 more.'
    ) in message


def test_many_missing_keys_are_summarised() -> None:
    entries = [env(f"V{index}", f"SECRET:db-creds,key{index}") for index in range(8)]
    message = run(
        review(pod(container("app", *entries))), {"db-creds": SecretLookup.found(set())}
    ).message
    assert message.count("has no key") == 5
    assert message.endswith("3 more secret references failed the same way.")


def test_warn_mode_converts_missing_secret() -> None:
    rv = review(ONE_REF)
    decision = run(rv, {"db-creds": SecretLookup.not_found()}, options=WARN)
    assert decision.allowed
    assert decision.warnings == (
        'secret "db-creds" was not found in namespace "runai-team-a", so containers '
        "using it wait in CreateContainerConfigError until it exists: env var "
        '"DB_PASS" in container "app" with key "password"',
    )
    assert decision.audit_annotations == {
        "injected-env-count": "1",
        "missing-secret-reference-count": "1",
    }
    assert apply(rv, decision)["spec"]["containers"][0]["env"] == [
        secret_env("DB_PASS", "db-creds", "password")
    ]


def test_warn_mode_converts_missing_key() -> None:
    decision = run(
        review(ONE_REF), {"db-creds": SecretLookup.found({"username"})}, options=WARN
    )
    assert decision.allowed
    assert decision.warnings[0].startswith(
        'secret "db-creds" in namespace "runai-team-a" has no key "password", so '
    )


def test_warn_mode_still_denies_forbidden_and_errors() -> None:
    for status, code in (
        (LookupStatus.FORBIDDEN, 500),
        (LookupStatus.ERROR, 503),
        (LookupStatus.TIMEOUT, 503),
    ):
        decision = run(
            review(ONE_REF), {"db-creds": SecretLookup.failed(status, "")}, options=WARN
        )
        assert not decision.allowed
        assert decision.code == code


def test_warnings_fit_api_server_limits() -> None:
    entries = [
        env(f"VERY_LONG_VARIABLE_NAME_{index:04d}", f"SECRET:{'s' * 60}-{index},k")
        for index in range(40)
    ]
    decision = run(review(pod(container("app", *entries))), {}, options=WARN)
    assert not decision.allowed
    lookups = {f"{'s' * 60}-{index}": SecretLookup.not_found() for index in range(40)}
    decision = run(review(pod(container("app", *entries))), lookups, options=WARN)
    assert decision.allowed
    assert len(decision.warnings) == 15
    assert decision.warnings[-1] == "26 more warnings not shown"
    assert all(len(warning) <= 256 for warning in decision.warnings)
    assert sum(len(warning) for warning in decision.warnings) <= 4096


def test_cluster_wide_secret_is_allowed_with_warning() -> None:
    lookups = {"db-creds": SecretLookup.found({"password"}, namespace="runai")}
    decision = run(review(ONE_REF), lookups)
    assert decision.allowed
    assert decision.warnings == (
        'secret "db-creds" is not in namespace "runai-team-a" yet but is a '
        'cluster-wide secret in namespace "runai", so it is copied there and '
        "containers using it start once the copy exists",
    )


def test_secret_found_in_own_namespace_has_no_warning() -> None:
    lookups = {"db-creds": SecretLookup.found({"password"}, namespace="runai-team-a")}
    assert run(review(ONE_REF), lookups).warnings == ()
