"""Names of objects under review, as messages show them."""

from collections.abc import Mapping
from typing import Any

from webhook.admission.decisions import quote
from webhook.admission.reviews import Request


def describe_subject(request: Request, obj: Mapping[str, Any]) -> str:
    """Name the object for a message: `Pod "web"` or `Pod with generateName "web-"`.

    Pods made by controllers arrive without a name, only a generateName.
    """
    kind = request["kind"]["kind"]
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = request.get("name") or metadata.get("name")
    if isinstance(name, str) and name:
        return f"{kind} {quote(name)}"
    generate_name = metadata.get("generateName")
    if isinstance(generate_name, str) and generate_name:
        return f"{kind} with generateName {quote(generate_name)}"
    return f"{kind} without a name"
