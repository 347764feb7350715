"""The steps that bring an older PostgreSQL journal's schema to this reactor's: 2 -> 3 adds
lineage (indexes and a table; no row is rewritten), run at the first writable opening and
as part of a new journal; the statements of the table it adds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

NOTE_COLUMNS = (
    "command_id, stream, type, outcome, error, correlation_id, causation_id, by, timestamp"
)
SAVE_NOTE = (
    f"INSERT INTO command_notes ({NOTE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (command_id) DO UPDATE SET stream = excluded.stream, type = excluded.type, "
    "outcome = excluded.outcome, error = excluded.error, "
    "correlation_id = excluded.correlation_id, causation_id = excluded.causation_id, "
    "by = excluded.by, timestamp = excluded.timestamp"
)
LINEAGE = """
CREATE INDEX IF NOT EXISTS events_by_correlation ON events (correlation_id);
CREATE INDEX IF NOT EXISTS events_by_causation ON events (causation_id);
CREATE TABLE IF NOT EXISTS command_notes (
    command_id text COLLATE "C" PRIMARY KEY, stream text NOT NULL, type text NOT NULL,
    outcome text NOT NULL, error text NOT NULL, correlation_id text, causation_id text,
    by text NOT NULL, timestamp double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS command_notes_by_correlation ON command_notes (correlation_id);
"""


def upgrade(conn: psycopg.Connection[Any], schema: str) -> None:
    """Bring a version-2 journal in `schema` (quoted) to version 3, in the caller's
    transaction (under its advisory lock: one process upgrades, the others then see 3)."""
    conn.execute(f"SET LOCAL search_path TO {schema}")
    conn.execute(LINEAGE)
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
