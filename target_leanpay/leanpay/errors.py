"""The failures target-leanpay distinguishes, each carrying what a human needs to act."""

from __future__ import annotations

from singer_sdk.exceptions import MissingKeyPropertiesError, RecordsWithoutSchemaException

MAX_QUOTE = 300
"""Longest excerpt of an API body or input line quoted in a message."""


def quote(text: str, limit: int = MAX_QUOTE) -> str:
    """Shorten `text` for a one-paragraph message, saying how much was cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


class TargetLeanpayError(Exception):
    """An expected failure: reported as one paragraph, without a traceback."""


class ConfigError(TargetLeanpayError):
    """The settings cannot work (missing key, unknown setting, unreadable client_ids_file, ...).

    Carries every problem found, so that a user fixes the config in one go.
    """

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class OutputClosed(TargetLeanpayError):
    """stdout, the STATE channel, was closed by the program reading it."""


class InputError(TargetLeanpayError):
    """The tap sent something that is not valid Singer input."""


class RecordBeforeSchema(InputError, RecordsWithoutSchemaException):
    """A RECORD arrived before its stream's SCHEMA (also the SDK's exception type)."""


class MissingKeyProperties(InputError, MissingKeyPropertiesError):
    """A record lacks a key property its SCHEMA declared (also the SDK's exception type)."""


class RejectedRecord(TargetLeanpayError):
    """A record was refused (locally or by Leanpay) and no dead-letter file is set."""


class DeadLetterError(TargetLeanpayError):
    """The dead-letter file cannot be written: the rejected record is not safe."""


class TooManyRejections(TargetLeanpayError):
    """More records were dead-lettered than `max_rejections` allows."""


class Stopped(TargetLeanpayError):
    """The run is stopping (a signal, a failure elsewhere): no new request was made."""


class ApiError(TargetLeanpayError):
    """Leanpay answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def api_said(self) -> str:
        """What the API answered, quoted for a message."""
        if self.status is None:
            return "no answer"
        return f"HTTP {self.status}: {quote(self.body) or '(empty body)'}"


class AuthError(ApiError):
    """401/403: retrying cannot help; the key is wrong or lacks rights."""


class ItemsRefused(ApiError):
    """A 4xx naming (or blaming) the items of a batch: worth isolating the bad items."""


class RetriesExhausted(ApiError):
    """A retryable failure (429, 5xx, connection) outlasted the retry budget."""


class Ambiguous(ApiError):
    """The request may or may not have been stored (no answer, a cut answer, a POST's 5xx).

    `answered`: Leanpay itself answered (a 500, a 2xx not listing every item), so it is
    done with the request; otherwise (no answer, a gateway's 502/504) it may still be
    working on it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        retry_after: float | None = None,
        answered: bool = False,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after
        self.answered = answered
