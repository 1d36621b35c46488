"""Keep the API key out of every log line, traceback included.

singer-sdk marks secrets in the settings schema but redacts nothing, and library errors
may quote what they were given. A filter on every log handler replaces the key wherever
it appears, as a last line of defence behind code that never logs it in the first place.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "********"
MIN_SECRET_LENGTH = 4
"""Shorter values (test keys like "k") would mask ordinary words; real keys are long."""


class RedactSecrets(logging.Filter):
    """Replaces each secret in the formatted message and traceback of a log record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def scrub(self, text: str) -> str:
        """`text` with every secret masked."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        message = record.getMessage()
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install(secrets: Iterable[str]) -> RedactSecrets:
    """Attach a redacting filter to every handler of the root logger."""
    redactor = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor
