"""The suite's own PostgreSQL server: real, on 127.0.0.1, with a password."""

from __future__ import annotations

import psycopg
import pytest
from support.postgres import PostgresServer


def test_the_server_answers_on_loopback_with_a_password(postgres: PostgresServer) -> None:
    database = postgres.new_database()
    [(address, version)] = postgres.sql(
        database, "SELECT inet_server_addr()::text, current_setting('server_version_num')::int"
    )
    assert address == "127.0.0.1/32"
    assert version >= 150000
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url(database, password="wrong")).close()
