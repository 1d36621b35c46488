"""Keep the API key out of every log line, traceback included.

singer-sdk marks secrets in the settings schema but redacts nothing, and library errors
may quote what they were given. A filter on every log handler replaces the key wherever
it appears, as a last line of defence behind code that never logs it in the first place.
It is installed as soon as the config files are read, before any setting is checked or
any line is logged, and learns the secrets of the environment once that is read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "********"
LOGGER_PREFIX = "target-leanpay"
MIN_SECRET_LENGTH = 4
"""Shorter values (test keys like "k") would mask ordinary words; real keys are long."""


class RedactSecrets(logging.Filter):
    """Replaces each secret in the formatted message and traceback of a log record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too (longest first, so a secret inside another is not half-masked)."""
        known = set(self.secrets)
        known.update(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        self.secrets = sorted(known, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """`text` with every secret masked."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        if not self.secrets:
            return True
        message = record.getMessage()
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_REDACTOR = RedactSecrets()
"""The process's one filter: every install adds to it."""


def install(secrets: Iterable[str]) -> RedactSecrets:
    """Mask `secrets` on every root handler; make sure our loggers speak.

    `meltano run` hands the SDK a logging config with `disable_existing_loggers: true`,
    applied after this package's modules created their loggers: without re-enabling
    them, every message of the target (errors included) would vanish.
    """
    _REDACTOR.add(secrets)
    for handler in logging.getLogger().handlers:
        if _REDACTOR not in handler.filters:
            handler.addFilter(_REDACTOR)
    for name, known in logging.root.manager.loggerDict.items():
        if name.startswith(LOGGER_PREFIX) and isinstance(known, logging.Logger):
            known.disabled = False
    return _REDACTOR
