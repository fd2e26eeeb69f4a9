"""Errors of the admission logic.

Two kinds of failure are kept apart because the HTTP edge responds to them
differently:

- `MalformedReview`: the webhook call itself is broken (not JSON, too large,
  wrong content type, no `request`). The response is an HTTP error status,
  sent before any admission logic runs.
- `Denied`: the call is fine but the object under review is not allowed. The
  response is HTTP 200 with an AdmissionReview that carries `allowed: false`,
  a status code and a message for the author.
"""


class AdmissionError(Exception):
    """Base class of every error raised by `webhook.admission`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MalformedReview(AdmissionError):
    """A webhook call that is not a valid AdmissionReview request.

    `status` is the HTTP status to respond with: 400 (bad body), 413 (body over
    the size limit) or 415 (content type other than JSON).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Denied(AdmissionError):
    """An object that must not be admitted, with the status code to report.

    `log_message`, when set, replaces `message` in the service's log because
    `message` quotes a value the author wrote, which may be a credential
    typed by mistake.
    """

    def __init__(self, code: int, message: str, log_message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.log_message = log_message


class InvalidWorkloadKinds(AdmissionError, ValueError):
    """A workload kinds configuration that names a bad entry."""
