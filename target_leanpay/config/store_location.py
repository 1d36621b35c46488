"""Where the target keeps what it must remember between runs: the `store` setting.

A folder on this machine, or a `postgresql://` URL that runs on different machines (a
container, a CI runner, a CronJob) share. Either one holds a cache of what Leanpay holds
and promises (what this target sent, or may have sent): the default folder is therefore
a state folder, `$XDG_STATE_HOME/target-leanpay` (else `~/.local/state/target-leanpay`),
never a cache that a user may clear.

A URL is a secret: its password (in the authority, or a `password=` parameter) is
masked wherever the URL is shown, and handed to the log filter before anything is
logged. The store never holds the API key.
"""

from __future__ import annotations

import importlib.util
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from target_leanpay.config.credentials import masked_url, url_credentials
from target_leanpay.config.redaction import MASK
from target_leanpay.leanpay.errors import TargetLeanpayError

URL_SCHEMES = ("postgresql://", "postgres://")
POSTGRES_EXTRA = (
    "install target-leanpay with its postgres extra (pip install '<target-leanpay>[postgres]'; "
    "in Meltano, pip_url: <target-leanpay>[postgres])"
)
"""What installs psycopg, the driver a `postgresql://` store needs."""
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)([^&#]*)")


class StoreError(TargetLeanpayError):
    """The store cannot be used: one line naming it (a URL without its password)."""


def default_store_dir() -> Path:
    """`$XDG_STATE_HOME/target-leanpay`, else `~/.local/state/target-leanpay`."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "target-leanpay"


def is_store_url(value: str) -> bool:
    """Whether `value` names a PostgreSQL store rather than a folder."""
    return value.strip().lower().startswith(URL_SCHEMES)


def masked_store_url(url: str) -> str:
    """`url` with its credentials and any `password=` parameter masked."""
    return _PASSWORD_PARAMETER.sub(lambda found: found.group(1) + MASK, masked_url(url))


def store_secrets(value: str) -> list[str]:
    """What the log filter masks of a store URL (nothing of a folder)."""
    if not is_store_url(value):
        return []
    found = url_credentials(value)
    for match in _PASSWORD_PARAMETER.finditer(value):
        found += [match.group(2), urllib.parse.unquote(match.group(2))]
    return [secret for secret in found if secret]


@dataclass(frozen=True)
class StoreLocation:
    """A folder or a PostgreSQL URL: exactly one of them."""

    folder: Path | None = None
    url: str | None = None

    @property
    def shown(self) -> str:
        """How messages name the store: the folder, or the URL without its password."""
        return str(self.folder) if self.url is None else masked_store_url(self.url)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a store, or None; the URL is quoted masked."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        _ = parts.port  # raises for a port out of range
    except ValueError as bad:
        return f"store {masked_store_url(url)!r} is not a valid URL ({bad})"
    if importlib.util.find_spec("psycopg") is None:
        return (
            f"store {masked_store_url(url)!r} is a PostgreSQL URL, which needs psycopg: "
            f"{POSTGRES_EXTRA}"
        )
    return None
