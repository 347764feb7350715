"""Where a PostgreSQL journal is: its URL parsed into a `Target` (server, schema, options of
every connection), and the schema name's rules."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import attrs

from reactor.errors import StorageError

# Every statement of the backend looks rows up by key or range. Plans: generic (planning the write
# statement each time cost a third of a lone append: 1.8k -> 2.7k appends/s), and by index,
# never by scanning a table whole: a plan made while a table was small is kept (prepared
# statements) until the next ANALYZE, and would scan it whole once it is big (decided
# batches of 256 went from 5 to 85 ms as a new journal grew, whatever plan_cache_mode).
# No JIT: it would compile such plans for their cost with seq scans off (200 ms an append).
PLANS = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off"
OPTIONS = ("schema", "pool_size", "connect_timeout", "application_name", "sslmode")
SCHEMA_NAME = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")
READ_ONLY = " -c default_transaction_read_only=on"  # a read-only opening (the CLI's looks)


@attrs.frozen(kw_only=True)
class Target:
    """A journal's place, from its URL: `postgresql://user@host:port/db?schema=NAME`, with
    options `pool_size` (connections, default 4), `connect_timeout` (seconds, default 5) and
    libpq's `application_name` and `sslmode`."""

    url: str  # as given, minus any password
    schema: str
    conninfo: str  # the server, for libpq
    connect: dict[str, Any]  # keyword arguments of every connection
    where: str  # "host H, port P, database D", for messages
    pool_size: int
    timeout: float

    @classmethod
    def parse(cls, url: str, *, readonly: bool = False) -> Target:
        """The target a URL names; `StorageError` for an unknown option or a bad value."""
        scheme, _, rest = url.partition("://")
        parts = urlsplit(f"postgresql://{rest}")
        if scheme not in ("postgresql", "postgres") or not rest:
            raise StorageError(f"not a PostgreSQL URL: {url!r} (postgresql://user@host:port/db)")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise StorageError(
                f"postgresql://{parts.hostname or ''}{parts.path}: unknown option(s) "
                f"{', '.join(unknown)}: the options are {', '.join(OPTIONS)}"
            )
        schema = check_name(options.pop("schema", "reactor"))
        try:
            pool_size = int(options.pop("pool_size", "4"))
            timeout = float(options.pop("connect_timeout", "5"))
            port = parts.port or 5432
        except ValueError as e:
            raise StorageError(f"bad PostgreSQL URL {_hidden(parts, schema)!r}: {e}") from None
        if pool_size < 1 or not timeout > 0:
            raise StorageError(
                f"{_hidden(parts, schema)}: pool_size must be at least 1 and connect_timeout "
                f"more than 0 seconds, got {pool_size} and {timeout:g}"
            )
        host = parts.hostname or "localhost"
        return cls(
            url=_hidden(parts, schema),
            schema=schema,
            conninfo=f"postgresql://{parts.netloc}{parts.path}",
            connect={
                "autocommit": True,
                "options": f"-c search_path={schema} {PLANS}{READ_ONLY if readonly else ''}",
                "connect_timeout": max(2, round(timeout)),  # libpq's minimum
                "application_name": "reactor",
                **options,
            },
            where=f"host {host}, port {port}, database {parts.path.lstrip('/') or '(default)'}",
            pool_size=pool_size,
            timeout=timeout,
        )


def _hidden(parts: SplitResult, schema: str) -> str:
    """The URL to show: no password."""
    login, at, server = parts.netloc.rpartition("@")
    return f"postgresql://{login.partition(':')[0]}{at}{server}{parts.path}?schema={schema}"


def check_name(schema: str) -> str:
    """`schema` if it is a valid schema name, else `StorageError` saying what is allowed."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise StorageError(
            f"schema must be 1 to 63 lowercase letters, digits or _ (not starting with a "
            f"digit, nor with pg_), got {schema!r}"
        )
    return schema
