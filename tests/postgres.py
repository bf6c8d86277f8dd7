"""A real PostgreSQL for the tests: the one on 127.0.0.1:5432 when it answers (development and CI
machines), else a server started from the pip package ``pgserver`` on a loopback port. Each
caller gets a fresh database, dropped afterwards; never a skip."""

from __future__ import annotations

import contextlib
import getpass
import socket
import tempfile
import uuid
from typing import Callable, Iterator


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _server() -> tuple[Callable[[str], str], contextlib.AbstractContextManager]:
    """How to name a database of a running server (a SQLAlchemy psycopg 3 URL), and what stops it."""
    import psycopg

    if _reachable("127.0.0.1", 5432):
        for user in ("postgres", getpass.getuser(), "root"):
            try:
                psycopg.connect(f"host=127.0.0.1 port=5432 user={user} dbname=postgres", connect_timeout=3).close()
                return (lambda db: f"postgresql+psycopg://{user}@127.0.0.1:5432/{db}"), contextlib.nullcontext()
            except psycopg.OperationalError:
                continue
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="lsray-pgserver-"), cleanup_mode="stop")
    socket_dir = server.get_uri().split("host=", 1)[1]  # postgresql://postgres:@/postgres?host=<dir>: no TCP at all
    return (lambda db: f"postgresql+psycopg://postgres@/{db}?host={socket_dir}"), server


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """Yield the SQLAlchemy URL of a new, empty database; drop it on exit."""
    import psycopg

    url_for, server = _server()
    name = f"lsray_test_{uuid.uuid4().hex[:12]}"
    admin = url_for("postgres").replace("postgresql+psycopg://", "postgresql://", 1)
    with server:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url_for(name)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
