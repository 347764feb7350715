"""What a PostgreSQL journal answers for lineage: events by id, correlation id and causation
id (indexed since schema 3), and the notes of commands; and what a rebuild needs besides
(dropping its shadow checkpoint). A part of `PostgresStorage`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reactor.store.base import CommandNote, StoredEvent
from reactor.store.postgres_governance import Governance
from reactor.store.postgres_schema import SELECT_EVENT, stored_event
from reactor.store.postgres_upgrade import NOTE_COLUMNS, SAVE_NOTE

if TYPE_CHECKING:
    import psycopg


class Lineage(Governance):
    """Lineage reads and notes, through the storage's pooled connections."""

    def delete_checkpoint(self, name: str) -> bool:
        def delete(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                conn.execute("DELETE FROM keyed_state WHERE name = %s", [name])
                return conn.execute("DELETE FROM checkpoints WHERE name = %s", [name]).rowcount > 0

        return self._run("delete a checkpoint", delete)

    def find_event(self, event_id: str) -> StoredEvent | None:
        rows = self._fetch(f"{SELECT_EVENT} WHERE event_id = %s", [event_id])
        return stored_event(rows[0]) if rows else None

    def correlated(self, correlation_id: str) -> list[StoredEvent]:
        sql = f"{SELECT_EVENT} WHERE correlation_id = %s ORDER BY position"
        return list(map(stored_event, self._fetch(sql, [correlation_id])))

    def caused_by(self, causation_id: str) -> list[StoredEvent]:
        sql = f"{SELECT_EVENT} WHERE causation_id = %s ORDER BY position"
        return list(map(stored_event, self._fetch(sql, [causation_id])))

    def save_note(self, note: CommandNote) -> None:
        self._change(SAVE_NOTE, note.row(), "save a command's note")

    def _noted(self, sql: str, params: list[str]) -> list[CommandNote]:
        """The notes `sql` selects; none in a version-2 journal (opened read-only)."""
        if not self._fetch("SELECT to_regclass('command_notes') IS NOT NULL")[0][0]:
            return []
        return [CommandNote.of_row(row) for row in self._fetch(sql, params)]

    def find_note(self, command_id: str) -> CommandNote | None:
        sql = f"SELECT {NOTE_COLUMNS} FROM command_notes WHERE command_id = %s"
        rows = self._noted(sql, [command_id])
        return rows[0] if rows else None

    def notes(self, correlation_id: str) -> list[CommandNote]:
        sql = (
            f"SELECT {NOTE_COLUMNS} FROM command_notes WHERE correlation_id = %s ORDER BY timestamp"
        )
        return self._noted(sql, [correlation_id])
