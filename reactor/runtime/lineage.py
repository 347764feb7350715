"""Lineage: the causal tree of a flow (`Runtime.trace`, `reactor trace`).

A flow is what shares a correlation id: a caller's command, the events it stored, the
commands sagas and subscribers sent on them (their events keep the cause in their metadata;
`acting` gives a subscriber's `rt.send` its cause), and so on.
The tree is read from the journal's lineage indexes: events by correlation id, notes of
commands that stored no event (rejected, failed, deciding nothing), and dead letters at the
flow's positions. Command -> its events -> the consumers they reached -> their commands.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import attrs
import orjson

from reactor.errors import ReactorError
from reactor.events import Cause, Envelope
from reactor.specs import ConsumerType
from reactor.store.base import CommandNote, DeadLetterRecord, StoredEvent
from reactor.store.event_store import EventStore

# While a subscriber function runs: the event it acts on (as a cause: the event and the
# subscriber) and that event's flow; `rt.send` from it takes both.
acting_on: ContextVar[tuple[Cause, str] | None] = ContextVar("reactor_acting_on", default=None)

# What consumes each stored type (a runtime knows; the CLI does not): (kind, label) pairs
# by type name, "*" for every type.
Consumers = Mapping[str, Collection[tuple[str, str]]]


class UnknownTraceId(ReactorError, LookupError):
    """No event, command or correlation in the journal has this id."""

    def __init__(self, wanted: str, url: str) -> None:
        self.id = wanted
        super().__init__(
            f"{wanted!r} is not an event id, command id or correlation id in {url}: check the "
            "id (a command is known by its events, or by a note if it stored none and was "
            "sent by a saga or under an id or correlation id its caller chose)"
        )


@attrs.frozen(kw_only=True)
class TraceNode:
    """One node of a causal tree. `kind`: "flow" (several roots), "command", "event", a
    consumer's kind ("saga", "projection", "subscriber") or "dead-letter"; `focus` marks
    the node asked for."""

    kind: str
    name: str
    id: str
    children: tuple[TraceNode, ...] = ()
    stream: str | None = None
    position: int | None = None
    outcome: str | None = None  # commands: accepted, rejected or failed
    error: str | None = None
    focus: bool = False

    def walk(self) -> Iterator[TraceNode]:
        """This node and every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_json(self) -> dict[str, Any]:
        """A plain dict (children nested), without the fields that are None."""
        out = {k: v for k, v in attrs.asdict(self, recurse=False).items() if v is not None}
        out["children"] = [c.to_json() for c in self.children]
        if not self.focus:
            del out["focus"]
        return out


@attrs.define
class _Command:
    id: str
    stream: str
    type: str = ""
    cause: str | None = None
    by: str = ""
    outcome: str = "accepted"
    error: str | None = None
    at: float = 0.0  # when it was stored or noted (its siblings' order)
    events: list[StoredEvent] = attrs.field(factory=list)


def trace(store: EventStore, wanted: str, consumers: Consumers | None = None) -> TraceNode:
    """The causal tree of the flow `wanted` belongs to (`wanted`: an event, command or
    correlation id); its root is the flow's first command (a "flow" node when it has
    several roots). `UnknownTraceId` if nothing has that id. O(events of the flow)."""
    correlation, extra = _correlation_of(store, wanted)
    events = [*extra, *store.correlated(correlation)]
    return _Builder(store, wanted, consumers).build(correlation, events, store.notes(correlation))


def _correlation_of(store: EventStore, wanted: str) -> tuple[str, list[StoredEvent]]:
    """The correlation id of `wanted`'s flow, and an event of it stored without one."""
    found = store.find_event(wanted)
    if found is not None:
        if found.correlation_id is None:  # the flow its consumers start carries its id
            return found.event_id, [found]
        return found.correlation_id, []
    caused = store.caused_by(wanted)
    if caused and caused[0].correlation_id is not None:
        return caused[0].correlation_id, []
    note = store.find_note(wanted)
    if note is not None and note.correlation_id is not None:
        return note.correlation_id, []
    if store.correlated(wanted) or store.notes(wanted):
        return wanted, []
    raise UnknownTraceId(wanted, store.url)


class _Builder:
    """Builds one tree from a flow's events, notes and dead letters."""

    def __init__(self, store: EventStore, wanted: str, consumers: Consumers | None) -> None:
        self.store, self.wanted, self.consumers = store, wanted, consumers
        self.commands: dict[str, _Command] = {}
        self.loose: list[StoredEvent] = []  # events no command stored (published ones)
        self.caused: dict[str, list[_Command]] = {}  # by the id of the event that caused them
        self.letters: dict[int, list[DeadLetterRecord]] = {}

    def build(
        self, correlation: str, events: list[StoredEvent], notes: list[CommandNote]
    ) -> TraceNode:
        for e in sorted({e.position: e for e in events}.values(), key=lambda e: e.position):
            self._take_event(e)
        for note in notes:
            self._take_note(note)
        for command in sorted(self.commands.values(), key=lambda c: c.at):
            self.caused.setdefault(command.cause or "", []).append(command)
        positions = {e.position for c in self.commands.values() for e in c.events}
        positions |= {e.position for e in self.loose}
        for letter in self.store.dead_letters():
            if letter.position in positions:
                self.letters.setdefault(letter.position, []).append(letter)
        known = {e.event_id for c in self.commands.values() for e in c.events}
        known |= {e.event_id for e in self.loose}
        roots = [self._command(c) for c in self.commands.values() if c.cause not in known]
        roots += [self._event(e) for e in self.loose]
        roots.sort(key=_first_position)
        if len(roots) == 1:
            return roots[0]
        return TraceNode(
            kind="flow", name=correlation, id=correlation, children=tuple(roots),
            focus=correlation == self.wanted,
        )  # fmt: skip

    def _take_event(self, e: StoredEvent) -> None:
        if e.causation_id is None:
            self.loose.append(e)
            return
        command = self.commands.get(e.causation_id)
        if command is None:
            meta = _metadata(e)
            command = self.commands[e.causation_id] = _Command(
                id=e.causation_id,
                stream=e.stream_id,
                type=str(meta.get("command", "")),
                cause=meta.get("cause"),
                by=str(meta.get("by", "")),
                at=e.timestamp,
            )
        command.events.append(e)

    def _take_note(self, note: CommandNote) -> None:
        command = self.commands.setdefault(
            note.command_id, _Command(id=note.command_id, stream=note.stream_id, at=note.timestamp)
        )
        command.type = command.type or note.type
        command.cause = command.cause or note.causation_id
        command.by = command.by or note.by
        if not command.events:  # a note of a command that stored events is an older one
            command.outcome, command.error = note.outcome, note.error or None

    def _command(self, c: _Command) -> TraceNode:
        return TraceNode(
            kind="command",
            name=c.type or "command",
            id=c.id,
            stream=c.stream,
            outcome=c.outcome,
            error=c.error,
            children=tuple(self._event(e) for e in c.events),
            focus=c.id == self.wanted,
        )

    def _event(self, e: StoredEvent) -> TraceNode:
        return TraceNode(
            kind="event",
            name=e.type,
            id=e.event_id,
            stream=e.stream_id,
            position=e.position,
            children=tuple(self._reached(e)),
            focus=e.event_id == self.wanted,
        )

    def _reached(self, e: StoredEvent) -> Iterator[TraceNode]:
        """A node per consumer the event reached: those known to consume its type, those
        that sent commands on it (with those commands), those holding it as a dead letter."""
        by: dict[str, list[TraceNode]] = {}
        if self.consumers is not None:
            for kind, label in [*self.consumers.get(e.type, ()), *self.consumers.get("*", ())]:
                by.setdefault(f"{kind}:{label}", [])
        for command in self.caused.get(e.event_id, ()):
            by.setdefault(command.by or "sender:?", []).append(self._command(command))
        letters = {d.handler: d for d in self.letters.get(e.position, ())}
        for name in list(by) + [h for h in letters if not any(n.endswith(f":{h}") for n in by)]:
            kind, _, label = name.rpartition(":") if ":" in name else ("consumer", "", name)
            letter = letters.get(label)
            children = by.get(name, [])
            if letter is not None:
                children = [*children, _letter(letter)]
            yield TraceNode(
                kind=kind,
                name=label,
                id=name,
                children=tuple(children),
                outcome="dead-lettered" if letter is not None else None,
            )


def _letter(d: DeadLetterRecord) -> TraceNode:
    return TraceNode(
        kind="dead-letter",
        name=d.handler,
        id=d.id,
        stream=d.stream_id,
        position=d.position,
        outcome=f"parked after {d.attempts} attempt(s)",
        error=d.error,
    )


def _metadata(e: StoredEvent) -> dict[str, Any]:
    try:
        meta = orjson.loads(e.metadata) if e.metadata else {}
    except orjson.JSONDecodeError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _first_position(node: TraceNode) -> int:
    return next((n.position for n in node.walk() if n.position is not None), 2**62)


def label(node: TraceNode) -> str:
    """One line for a node, as `reactor trace` prints it."""
    parts = [node.kind, node.name if node.name != node.kind else ""]  # (a class not known)
    if node.kind == "command":
        parts += [f"-> {node.stream}", f"[{node.outcome}]" if node.outcome else ""]
    elif node.kind == "event":
        parts += [f"#{node.position}", f"({node.stream})"]
    elif node.outcome:
        parts.append(f"[{node.outcome}]")
    if node.error:
        parts.append(f"! {node.error}")
    parts.append(f"id {node.id}")
    text = "  ".join(p for p in parts if p)
    return f"{text}  <==" if node.focus else text


def acting(fn: Callable[[Any, Envelope], object], by: str) -> Callable[[Any, Any, Envelope], None]:
    """A subscriber's handler: `fn(event, envelope)`, with `acting_on` set meanwhile, so the
    commands it sends join the event's flow as caused by it (`by`: the subscriber)."""

    def call(_instance: None, event: Any, env: Envelope) -> None:
        token = acting_on.set((Cause(env.event_id, by), env.correlation_id or env.event_id))
        try:
            fn(event, env)
        finally:
            acting_on.reset(token)

    return call


def consumers_of(specs: Iterable[ConsumerType]) -> dict[str, list[tuple[str, str]]]:
    """What consumes each stored type, from the specs of a runtime's consumers."""
    found: dict[str, list[tuple[str, str]]] = {}
    for spec in specs:
        for type_name in spec.types if spec.types is not None else ("*",):
            found.setdefault(type_name, []).append((spec.kind.value, spec.label))
    return found
