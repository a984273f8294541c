"""The domain's refusals: what a request asked for that a rule does not allow.

Domain modules raise these (never HTTP errors); the API maps each kind to one status in
one place (:mod:`coopml.service.api.errors`) and the dashboard shows the item as absent
(:class:`NotFound`) or the message. ``code`` is machine-readable, ``message`` a sentence
for the caller that names the parameter, what is allowed and what was received;
``retry_after`` (seconds) is set when retrying later can succeed.

Examples
--------
>>> err = NotFound("round 'x' not found")
>>> err.code, err.message
('not_found', "round 'x' not found")
>>> Invalid("payment_rule must be ...", code="invalid_learner").code
'invalid_learner'
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DomainError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Throttled",
    "not_found",
]


class DomainError(Exception):
    """A rule refused a request (the base of the kinds below)."""

    code = "domain_error"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class NotFound(DomainError):
    """No such item, or not one the caller may see (the two look the same)."""

    code = "not_found"


class Forbidden(DomainError):
    """The caller's role may not do this."""

    code = "forbidden"


class Conflict(DomainError):
    """The request conflicts with the current state (missing data, not settled, ...)."""

    code = "conflict"


class Invalid(DomainError):
    """A value that no state of the service would accept."""

    code = "validation_error"


class Throttled(DomainError):
    """A quota is used up for now: retrying after ``retry_after`` seconds can succeed."""

    code = "quota_exceeded"


def not_found(kind: str, item_id: str) -> NotFound:
    """``<kind> '<id>' not found``: the answer for a missing or hidden item."""
    return NotFound(f"{kind} {item_id!r} not found")
