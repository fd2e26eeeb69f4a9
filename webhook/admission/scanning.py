"""One pass over an object's pod specs: find references, build the patch.

The pass reads the request's raw JSON in place (no copies) and records what
to check and which patch operations to send if every check passes.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from webhook.admission.additions import EnvAddition
from webhook.admission.decisions import PatchOperation, quote
from webhook.admission.errors import Denied
from webhook.admission.patches import add_env_entries, replace_env_entry
from webhook.admission.references import (
    EXPECTED_FORM,
    PREFIX,
    InvalidReference,
    SecretRef,
    check_secret_key,
    check_secret_name,
    is_placeholder,
    parse_reference,
    secret_key_ref_entry,
)

# A value that starts with PREFIX is a reference. One that starts with
# one of these words may be a misspelled reference (see misspelled_prefix).
PREFIX_WORDS = (PREFIX[:-1], PREFIX[:-1].lower(), PREFIX[:-1].capitalize())

# The prefix in another case was most likely meant as it, whatever follows.
_OTHER_CASES = (PREFIX.lower(), PREFIX.capitalize())
# The word in each case, singular or plural, then a colon, semicolon or
# equals sign. The chart's match condition sends values that start with any
# of these to the webhook, so the list there must be the same.
MISSPELLED_PREFIXES = tuple(
    word + plural + separator
    for word in PREFIX_WORDS
    for plural in ("", "S" if word.isupper() else "s")
    for separator in ":;="
    if word + plural + separator != PREFIX
)

# Most distinct secrets one review may refer to. Each needs an API call (or
# a cache hit), and all must finish inside kube-apiserver's default webhook
# timeout of 10 s. At 16 calls at once and tens of milliseconds each, 256
# secrets take about 16 rounds, well inside it. Real pods refer to a handful
# of secrets, so the limit is far above them and only stops a pod made to
# load the API server. The scan stops at the first secret past the limit,
# so such a pod costs little CPU either.
MAX_SECRETS_PER_REVIEW = 256

APP_CONTAINERS = "containers"
INIT_CONTAINERS = "initContainers"
EPHEMERAL_CONTAINERS = "ephemeralContainers"


class ReferenceUse(NamedTuple):
    """One env var that refers to a secret key, and where it sits.

    `container` is empty for a Run:AI v2 workload, whose env belongs to no
    container. `origin` is empty for the object's own env, else the origin
    of the addition. A named tuple, because a large pod creates thousands.
    """

    ref: SecretRef
    env_var: str
    container: str = ""
    origin: str = ""

    def describe(self) -> str:
        """Describe the place for a message, e.g. `env var "A" in container "app"`."""
        return describe_place(self.env_var, self.container, self.origin)


def describe_place(env_var: str, container: str = "", origin: str = "") -> str:
    """Name an env var, its container and its origin for a message."""
    text = f"env var {quote(env_var)}"
    if container:
        text += f" in container {quote(container)}"
    if origin:
        text += f" from {origin}"
    return text


class Scan:
    """Findings of one pass over an object.

    `subject` names the object in messages, for example `Pod "web"`. Most
    reviews need no message, so it may be given as `describe`, a function
    called the first time it is read. `keys` maps each secret used to the
    keys used of it.
    """

    __slots__ = (
        "_describe",
        "_subject",
        "convert_literals",
        "injected",
        "keys",
        "operations",
        "uses",
        "warnings",
    )

    def __init__(
        self,
        subject: str = "",
        convert_literals: bool = True,
        describe: Callable[[], str] | None = None,
    ) -> None:
        self._subject = subject
        self._describe = describe
        self.convert_literals = convert_literals
        self.uses: list[ReferenceUse] = []
        self.operations: list[PatchOperation] = []
        self.injected: list[str] = []
        self.warnings: list[str] = []
        self.keys: dict[str, set[str]] = {}

    @property
    def subject(self) -> str:
        if self._describe is not None:
            self._subject = self._describe()
            self._describe = None
        return self._subject

    def _use(self, use: ReferenceUse) -> None:
        """Record one use, raising `Denied` (400) past the limit of secrets."""
        ref = use.ref
        keys = self.keys.get(ref.secret)
        if keys is None:
            if len(self.keys) >= MAX_SECRETS_PER_REVIEW:
                raise Denied(
                    400,
                    f"{self.subject} refers to more than {MAX_SECRETS_PER_REVIEW} "
                    f"different secrets, over the limit of {MAX_SECRETS_PER_REVIEW} "
                    "per object. Put related keys into fewer secrets.",
                )
            keys = self.keys[ref.secret] = set()
        keys.add(ref.key)
        self.uses.append(use)

    def scan_containers(
        self, containers: object, base_path: str, additions: Sequence[EnvAddition] = ()
    ) -> None:
        """Convert placeholders in each container's env and add `additions`."""
        if not isinstance(containers, list):
            return
        for index, container in enumerate(containers):
            if isinstance(container, dict):
                self.scan_container(container, f"{base_path}/{index}", additions)

    def scan_container(
        self,
        container: Mapping[str, Any],
        path: str,
        additions: Sequence[EnvAddition] = (),
    ) -> None:
        """Convert placeholders in one container's env and add `additions`."""
        name = container.get("name")
        container_name = name if isinstance(name, str) else ""
        env = container.get("env")
        entries = env if isinstance(env, list) else []

        # This loop runs once per env entry of every container, the hottest
        # code of a review, so it keeps to exact type checks and one method
        # call per entry. The request body is parsed JSON: every object is a
        # dict and every string a str.
        if self.convert_literals:
            for index, entry in enumerate(entries):
                if type(entry) is not dict:
                    continue
                value = entry.get("value")
                # One call separates references and their possible
                # misspellings from every other value.
                if type(value) is not str or not value.startswith(PREFIX_WORDS):
                    continue
                if "valueFrom" in entry:
                    # The author's own valueFrom entries, optional ones
                    # included, are never read or changed.
                    continue
                if value.startswith(PREFIX):
                    self._convert(entry, value, index, path, container_name)
                else:
                    prefix = misspelled_prefix(value)
                    if prefix is not None:
                        name = entry.get("name")
                        env_var = name if type(name) is str else ""
                        self._warn_misspelled(prefix, env_var, container_name)

        if additions:
            defined = _defined_names(entries)
            self._add(additions, path, container_name, isinstance(env, list), defined)

    def _convert(
        self, entry: dict[str, Any], value: str, index: int, path: str, container: str
    ) -> None:
        env_var = entry.get("name")
        if type(env_var) is not str:
            return
        ref = self.parse(value, env_var, container)
        self._use(ReferenceUse(ref, env_var, container))
        self.operations.append(
            replace_env_entry(path, index, secret_key_ref_entry(env_var, ref))
        )
        self.injected.append(f"{container}/{env_var}")

    def _warn_misspelled(
        self, prefix: str, env_var: str, container: str, origin: str = ""
    ) -> None:
        """Warn that a value that starts with `prefix` is kept as plain text.

        Only the prefix is quoted, since the rest may be a literal value.
        """
        place = describe_place(env_var, container, origin)
        self.warnings.append(
            f"{place} starts with {quote(prefix)}, which is not a secret "
            f"reference, so its value is kept as plain text. {prefix_fix(prefix)}"
        )

    def _add(
        self,
        additions: Sequence[EnvAddition],
        path: str,
        container: str,
        has_env_array: bool,
        defined: dict[str, Mapping[str, Any]],
    ) -> None:
        entries = []
        added: dict[str, EnvAddition] = {}
        for addition in additions:
            entry, ref = self._addition_entry(addition, container)
            existing = defined.get(addition.name)
            if existing is not None:
                earlier = added.get(addition.name)
                self._check_override(existing, entry, addition, container, earlier)
                continue

            defined[addition.name] = entry
            added[addition.name] = addition
            entries.append(entry)
            self.injected.append(f"{container}/{addition.name}")
            if ref is not None:
                use = ReferenceUse(ref, addition.name, container, addition.origin)
                self._use(use)
        self.operations.extend(add_env_entries(path, has_env_array, entries))

    def _addition_entry(
        self, addition: EnvAddition, container: str
    ) -> tuple[dict[str, Any], SecretRef | None]:
        if not is_placeholder(addition.value):
            prefix = misspelled_prefix(addition.value)
            if prefix is not None:
                self._warn_misspelled(prefix, addition.name, container, addition.origin)
            return {"name": addition.name, "value": addition.value}, None
        ref = self.parse(addition.value, addition.name, container, addition.origin)
        return secret_key_ref_entry(addition.name, ref), ref

    def _check_override(
        self,
        existing: Mapping[str, Any],
        entry: dict[str, Any],
        addition: EnvAddition,
        container: str,
        earlier: EnvAddition | None,
    ) -> None:
        """Warn that an addition loses to an env var of the same name.

        Equal entries are silent: a second pass (reinvocation) finds its own
        earlier result, and a literal placeholder equal to the addition is
        converted anyway, unless the object opts out of converting literals.
        """
        if existing == entry:
            return
        if "valueFrom" not in existing and existing.get("value") == addition.value:
            if self.convert_literals or not is_placeholder(addition.value):
                return

        name, where = quote(addition.name), quote(container)
        if earlier is not None:
            warning = (
                f"env var {name} from {addition.origin} is not added to container "
                f"{where} because {earlier.origin} sets it first"
            )
        else:
            warning = (
                f"container {where} already defines env var {name}, "
                f"so its own value wins over {addition.origin}"
            )
        self.warnings.append(warning)

    def check_addition(self, addition: EnvAddition) -> None:
        """Record the secret reference of an addition to check, without adding it."""
        if is_placeholder(addition.value):
            ref = self.parse(addition.value, addition.name, "", addition.origin)
            self._use(ReferenceUse(ref, addition.name, "", addition.origin))
        else:
            prefix = misspelled_prefix(addition.value)
            if prefix is not None:
                self._warn_misspelled(prefix, addition.name, "", addition.origin)

    def scan_environment_items(self, items: object, previous: object = None) -> None:
        """Check a Run:AI v2 env map (`NAME: {value: ...}`) without rewriting it.

        Items equal to those of the `previous` map, the stored object's on
        UPDATE, were checked when they were written and are skipped.
        """
        if not isinstance(items, dict) or not self.convert_literals:
            return
        checked = previous if isinstance(previous, dict) else {}
        for env_var, item in items.items():
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(env_var, str):
                continue
            if env_var in checked and checked[env_var] == item:
                continue
            if is_placeholder(value):
                ref = self.parse(value, env_var, "")
                self._use(ReferenceUse(ref, env_var))
            else:
                prefix = misspelled_prefix(value)
                if prefix is not None:
                    self._warn_misspelled(prefix, env_var, "")

    def parse(
        self, value: str, env_var: str, container: str, origin: str = ""
    ) -> SecretRef:
        """Parse a placeholder, raising `Denied` (400) that names where it sits."""
        try:
            return parse_reference(value)
        except InvalidReference as error:
            place = describe_place(env_var, container, origin)
            problem = f"is not a valid secret reference because {error.reason}"
            raise Denied(
                400,
                f"{self.subject}, {place}: value {quote(value)} {problem}. Use the "
                f"form {EXPECTED_FORM}, for example SECRET:db-creds,password.",
                log_message=f"{self.subject}, {place}: the value (not logged) "
                f"{problem}",
            ) from None


def misspelled_prefix(value: object) -> str | None:
    """Return the misspelled prefix that `value` starts with, or None.

    That is `secret:` or `Secret:` before anything, or another of
    MISSPELLED_PREFIXES, such as `SECRETS:`, `SECRET;` or `Secret=`, before
    a valid `<secret-name>,<secret-key>` (white space between them is
    allowed), so that plain values such as `SECRETS: none` stay silent.
    Nothing is cached, since the value may be a literal one. A value that is
    not a string has no prefix.
    """
    if (
        not isinstance(value, str)
        or value.startswith(PREFIX)
        or not value.startswith(MISSPELLED_PREFIXES)
    ):
        return None
    if value.startswith(_OTHER_CASES):
        return value[: len(PREFIX)]
    prefix = next(p for p in MISSPELLED_PREFIXES if value.startswith(p))
    secret, comma, key = value[len(prefix) :].lstrip().partition(",")
    if not comma:
        return None
    try:
        check_secret_name(secret)
        check_secret_key(key)
    except InvalidReference:
        return None
    return prefix


def prefix_fix(prefix: str) -> str:
    """Tell how to write a misspelled `prefix` as a secret reference."""
    if prefix.upper() == PREFIX:
        return f"Write {PREFIX} in upper case to refer to a secret: {EXPECTED_FORM}."
    return f"Start the value with {PREFIX} to refer to a secret: {EXPECTED_FORM}."


def _defined_names(entries: list[Any]) -> dict[str, Mapping[str, Any]]:
    """Map each env name of a container to its first entry."""
    defined: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            defined.setdefault(entry["name"], entry)
    return defined
