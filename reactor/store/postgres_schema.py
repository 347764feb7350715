"""Where a PostgreSQL journal is (its URL) and its tables, created once, checked at each open.

The tables are created in one transaction under an advisory lock, so two processes opening
a new schema at once agree; a schema made by another reactor version is refused, never
migrated silently. Statements name tables bare: every connection sets `search_path`.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

import attrs

from reactor.errors import StorageError
from reactor.store.base import StoredEvent

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 1
# Every statement here looks rows up by key or range. Plans: generic (planning the write
# statement each time cost a third of a lone append: 1.8k -> 2.7k appends/s), and by index,
# never by scanning a table whole: a plan made while a table was small is kept (prepared
# statements) until the next ANALYZE, and would scan it whole once it is big (decided
# batches of 256 went from 5 to 85 ms as a new journal grew, whatever plan_cache_mode).
# No JIT: it would compile such plans for their cost with seq scans off (200 ms an append).
PLANS = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c jit=off"
OPTIONS = ("schema", "pool_size", "connect_timeout", "application_name", "sslmode")
SCHEMA_NAME = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")
# Keys and names sort and compare byte-wise (COLLATE "C"), as the other backends do,
# whatever the database's collation.
TABLES = """
CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
CREATE TABLE head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one), position bigint NOT NULL
);
CREATE TABLE events (
    position bigint PRIMARY KEY,
    stream text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    event_id text COLLATE "C" NOT NULL UNIQUE,
    type text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    data bytea NOT NULL,
    timestamp double precision NOT NULL,
    metadata bytea,
    correlation_id text,
    causation_id text,
    UNIQUE (stream, seq)
);
CREATE TABLE snapshots (
    stream text COLLATE "C" PRIMARY KEY, seq bigint NOT NULL, type text NOT NULL,
    version integer NOT NULL, state bytea NOT NULL, timestamp double precision NOT NULL
);
CREATE TABLE checkpoints (
    name text COLLATE "C" PRIMARY KEY, position bigint NOT NULL, state bytea,
    timestamp double precision NOT NULL
);
CREATE TABLE keyed_state (
    name text COLLATE "C", key text COLLATE "C", state bytea NOT NULL, PRIMARY KEY (name, key)
);
CREATE TABLE commands (
    command_id text COLLATE "C" PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL,
    count integer NOT NULL, position bigint NOT NULL
);
CREATE TABLE dead_letters (
    id text COLLATE "C" PRIMARY KEY, handler text COLLATE "C" NOT NULL,
    position bigint NOT NULL, stream text NOT NULL, error text NOT NULL,
    attempts integer NOT NULL, parked bigint[] NOT NULL, request text NOT NULL,
    UNIQUE (handler, position)
);
CREATE TABLE leases (
    name text COLLATE "C" PRIMARY KEY, owner text NOT NULL, epoch bigint NOT NULL,
    expires double precision NOT NULL
);
INSERT INTO head VALUES (true, 0);
"""
SELECT_EVENT = (
    "SELECT event_id, stream, seq, position, type, version, data, timestamp, metadata, "
    "correlation_id, causation_id FROM events"
)
SAVE_SNAPSHOT = (
    "INSERT INTO snapshots VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (stream) DO UPDATE "
    "SET seq = excluded.seq, type = excluded.type, version = excluded.version, "
    "state = excluded.state, timestamp = excluded.timestamp"
)
SAVE_LETTER = (  # every field but `request`, the operator's
    "INSERT INTO dead_letters VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO "
    "UPDATE SET handler = excluded.handler, position = excluded.position, "
    "stream = excluded.stream, error = excluded.error, attempts = excluded.attempts, "
    "parked = excluded.parked"
)
# Leases expire by the server's clock, so that nodes with skewed clocks agree.
ACQUIRE_LEASE = (
    "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t) "
    "INSERT INTO leases AS l (name, owner, epoch, expires) "
    "SELECT %s, %s, 1, t + %s FROM now ON CONFLICT (name) DO UPDATE "
    "SET owner = excluded.owner, expires = excluded.expires, epoch = CASE "
    "WHEN l.owner = excluded.owner AND l.expires > (SELECT t FROM now) THEN l.epoch "
    "ELSE l.epoch + 1 END WHERE l.owner = excluded.owner OR l.expires <= (SELECT t FROM now) "
    "RETURNING epoch, expires"
)
RELEASE_LEASE = (
    "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t) "
    "UPDATE leases SET expires = now.t FROM now WHERE name = %s AND owner = %s "
    "AND expires > now.t"
)
LOCK_HEAD = "SELECT position FROM head FOR UPDATE"
VERSIONS = (
    "SELECT s, coalesce((SELECT max(seq) FROM events WHERE stream = s), 0) "
    "FROM unnest(%b::text[]) AS s"
)
STORED = f"{SELECT_EVENT} WHERE event_id = ANY(%b::text[])"
COMMANDS = (
    "SELECT command_id, stream, version, count, position FROM commands "
    "WHERE command_id = ANY(%b::text[])"
)
# FOR SHARE: a takeover of a lease a batch depends on waits until the batch is committed.
LEASES = "SELECT name, owner, epoch, expires FROM leases WHERE name = ANY(%b::text[]) FOR SHARE"
EVENTS_OF = f"{SELECT_EVENT} WHERE stream = %s AND seq > %s AND seq <= %s ORDER BY seq"
# Arrays go in binary (%b): 4-5x faster to encode than text for strings (perf/postgres.py).
# The statement that stores a batch (see `postgres_batch.Writes`): `s`, the versions of the
# streams written; `h` moves the head by n unless an expected version differs (then nothing
# is stored: every other part joins `h`); `e`, the events. Its result: the head before, the
# versions, and the NOTIFY of the new head. Each of the other parts is there if needed.
WRITE_EVENTS = """WITH s AS (
    SELECT x.stream, x.expected, x.ord,
        coalesce((SELECT max(seq) FROM events e WHERE e.stream = x.stream), 0) AS actual
    FROM unnest(%(s_stream)b::text[], %(s_expected)b::bigint[]) WITH ORDINALITY
        AS x(stream, expected, ord)
), h AS (
    UPDATE head SET position = position + %(n)s
    WHERE NOT EXISTS (SELECT FROM s WHERE s.expected <> s.actual)
    RETURNING position - %(n)s AS base
), e AS (
    INSERT INTO events (event_id, stream, seq, position, type, version, data, timestamp,
        metadata, correlation_id, causation_id)
    SELECT r.event_id, r.stream, s.actual + r.k, h.base + r.i, r.type, r.version, r.data,
        r.timestamp, r.metadata, r.correlation_id, r.causation_id
    FROM unnest(%(stream)b::text[], %(k)b::bigint[], %(i)b::bigint[], %(event_id)b::text[],
        %(type)b::text[], %(version)b::int[], %(data)b::bytea[], %(timestamp)b::float8[],
        %(metadata)b::bytea[], %(correlation_id)b::text[], %(causation_id)b::text[])
        AS r(stream, k, i, event_id, type, version, data, timestamp, metadata,
            correlation_id, causation_id)
    JOIN s USING (stream) CROSS JOIN h
)"""
WRITE_PARTS = {
    "commands": """c AS (
    INSERT INTO commands (command_id, stream, version, count, position)
    SELECT x.id, x.stream, coalesce(x.version, s.actual + x.count), x.count,
        coalesce(x.position, h.base + x.i)
    FROM unnest(%(c_id)b::text[], %(c_stream)b::text[], %(c_version)b::bigint[],
        %(c_count)b::int[], %(c_position)b::bigint[], %(c_i)b::bigint[])
        AS x(id, stream, version, count, position, i)
    LEFT JOIN s USING (stream) CROSS JOIN h
)""",
    "checkpoints": """p AS (
    INSERT INTO checkpoints (name, position, state, timestamp)
    SELECT x.* FROM unnest(%(cp_name)b::text[], %(cp_position)b::bigint[],
        %(cp_state)b::bytea[], %(cp_time)b::float8[]) AS x(name, position, state, timestamp)
    CROSS JOIN h
    ON CONFLICT (name) DO UPDATE SET position = excluded.position, state = excluded.state,
        timestamp = excluded.timestamp
)""",
    "saved": """ks AS (
    INSERT INTO keyed_state (name, key, state)
    SELECT x.* FROM unnest(%(k_name)b::text[], %(k_key)b::text[], %(k_state)b::bytea[])
        AS x(name, key, state) CROSS JOIN h
    ON CONFLICT (name, key) DO UPDATE SET state = excluded.state
)""",
    "deleted": """kd AS (
    DELETE FROM keyed_state WHERE EXISTS (SELECT FROM h)
    AND (name, key) IN (SELECT * FROM unnest(%(d_name)b::text[], %(d_key)b::text[]))
)""",
}
WRITE_RESULT = """
SELECT (SELECT base FROM h), (SELECT array_agg(actual ORDER BY ord) FROM s),
    (SELECT pg_notify(%(channel)s, (base + %(n)s)::text) FROM h WHERE %(n)s > 0)"""


@functools.cache
def write_statement(parts: frozenset[str]) -> str:
    """The write statement with these of `WRITE_PARTS`."""
    return ", ".join([WRITE_EVENTS, *(WRITE_PARTS[p] for p in sorted(parts))]) + WRITE_RESULT


stored_event = functools.partial(tuple.__new__, StoredEvent)  # a row as is, no _make checks


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


def prepare(conn: psycopg.Connection[Any], schema: str, create: bool) -> None:
    """Check the journal in `schema` (creating it first if `create` and it has no tables);
    `StorageError` for a missing schema, a foreign one or another schema version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"reactor {schema}"])
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                [schema],
            )
        }
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
        if not tables:
            if not create:
                missing = "no schema" if exists is None else "an empty schema"
                raise StorageError(
                    f"no reactor journal in schema {schema!r} ({missing} of that name): "
                    "open it with create=True to make one"
                )
            _create(conn, schema)
            return
        _check(conn, schema, tables)


def _create(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}")
    conn.execute(f"SET LOCAL search_path TO {quoted(schema)}")
    conn.execute(TABLES)
    conn.execute(
        "INSERT INTO meta VALUES ('application', 'reactor'), ('schema_version', %s)",
        [str(SCHEMA_VERSION)],
    )


def _check(conn: psycopg.Connection[Any], schema: str, tables: set[str]) -> None:
    if "meta" not in tables:
        raise StorageError(
            f"schema {schema!r} is not a reactor journal (it has tables "
            f"{', '.join(sorted(tables))}, but no meta): choose another ?schema="
        )
    meta = dict(conn.execute(f"SELECT key, value FROM {quoted(schema)}.meta").fetchall())
    if meta.get("application") != "reactor":
        raise StorageError(f"schema {schema!r} is not a reactor journal (its meta: {meta})")
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise StorageError(
            f"schema {schema!r} holds a reactor journal of schema version {version}, but this "
            f"reactor uses version {SCHEMA_VERSION}: open it with the reactor release that "
            "made it (reactor never migrates a PostgreSQL journal by itself)"
        )


def quoted(schema: str) -> str:
    """The schema as an SQL identifier (`check_name` allows lowercase letters, digits, _)."""
    return f'"{schema}"'


def check_name(schema: str) -> str:
    """`schema` if it is a valid schema name, else `StorageError` saying what is allowed."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise StorageError(
            f"schema must be 1 to 63 lowercase letters, digits or _ (not starting with a "
            f"digit, nor with pg_), got {schema!r}"
        )
    return schema
