"""What a SQLite journal answers for lineage: events by id, correlation id and causation id
(indexed since schema 4), and the notes of commands (a part of `SQLiteStorage`)."""

from __future__ import annotations

from reactor.store.base import CommandNote, StoredEvent
from reactor.store.sqlite_records import Records
from reactor.store.sqlite_schema import SELECT_EVENT, stored_event

NOTE_COLUMNS = (
    "command_id, stream, type, outcome, error, correlation_id, causation_id, by, timestamp"
)


class Lineage(Records):
    """Lineage reads and notes, through the storage's reads (`_query`) and writes
    (`_transaction`)."""

    def find_event(self, event_id: str) -> StoredEvent | None:
        rows = self._query(f"{SELECT_EVENT} WHERE e.event_id = ?", (event_id,))
        return stored_event(rows[0]) if rows else None

    def correlated(self, correlation_id: str) -> list[StoredEvent]:
        sql = f"{SELECT_EVENT} WHERE e.correlation_id = ? ORDER BY e.position"
        return list(map(stored_event, self._query(sql, (correlation_id,))))

    def caused_by(self, causation_id: str) -> list[StoredEvent]:
        sql = f"{SELECT_EVENT} WHERE e.causation_id = ? ORDER BY e.position"
        return list(map(stored_event, self._query(sql, (causation_id,))))

    def save_note(self, note: CommandNote) -> None:
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO command_notes ({NOTE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                note.row(),
            )

    def _noted(self, sql: str, params: tuple[str, ...]) -> list[CommandNote]:
        """The notes `sql` selects; none in a journal older than schema 4 (read-only)."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE name = 'command_notes'"):
            return []
        return [CommandNote.of_row(row) for row in self._query(sql, params)]

    def find_note(self, command_id: str) -> CommandNote | None:
        sql = f"SELECT {NOTE_COLUMNS} FROM command_notes WHERE command_id = ?"
        rows = self._noted(sql, (command_id,))
        return rows[0] if rows else None

    def notes(self, correlation_id: str) -> list[CommandNote]:
        sql = (
            f"SELECT {NOTE_COLUMNS} FROM command_notes WHERE correlation_id = ? ORDER BY timestamp"
        )
        return self._noted(sql, (correlation_id,))
