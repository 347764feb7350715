"""Sending: `send`, `submit`, `send_async` and `publish`, the commands and facts a runtime
takes in (each checked, then handed to its `CommandRoute` or the journal)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reactor.actors.dispatch import current_dispatcher, run_here
from reactor.actors.messages import Appended, AppendRequest, Handle, Reply
from reactor.actors.pooled import tell
from reactor.errors import ReactorError, Timeout
from reactor.events import CommandResult, NewEvent, new_id
from reactor.registry import qualified_name
from reactor.runtime.core import RuntimeCore
from reactor.runtime.lineage import acting_on
from reactor.security.audit import ACCEPTED, entry, principal_metadata
from reactor.security.policy import Principal
from reactor.store.base import Append


class Sending(RuntimeCore):
    """The commands part of `Runtime`."""

    # -- commands -----------------------------------------------------------------------------

    def submit(
        self,
        command: object,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
        principal: Principal | None = None,
    ) -> Reply:
        """Send a command without waiting: returns a future whose `.get(timeout)` gives the
        `CommandResult` or raises what the command raised (`Rejected`, ...)."""
        reply = Reply()
        self._send(command, command_id, correlation_id, reply, principal)
        return reply

    def send(
        self,
        command: object,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
        principal: Principal | None = None,
    ) -> CommandResult:
        """Send a command and wait for its `CommandResult`.

        Raises `Rejected` (nothing stored), `ConcurrencyError` (after the retries), the
        handler's own exception, `UnknownCommand`, `InvalidCommand`, `Timeout` or
        `RuntimeStopped`. A `command_id` already handled returns the first result and
        stores nothing. With no `timeout`, the calling thread itself runs the turns its
        command needs of the aggregate, the journal and the router when they are idle (no
        hand-off between threads). With a `timeout`, the work runs on the pool and `send`
        raises `Timeout` when it passes; the command may still complete: send it again with
        the same `command_id` to learn its outcome (nothing is stored twice). `principal`
        is who sends it: kept in its events' metadata; with a policy, `Unauthorized` unless
        one of its roles may send this command class (nothing is sent).
        """
        worker = current_dispatcher()
        if worker is not None and not worker.may_block:
            raise ReactorError(
                f"send() would block a worker of {worker.name!r} (and could deadlock it); "
                "use submit() and do not wait, or send from a subscriber"
            )
        reply = Reply()
        if timeout is None:
            cid, stream_id = run_here(
                lambda: self._send(command, command_id, correlation_id, reply, principal),
                reply.done,
            )
        else:
            cid, stream_id = self._send(command, command_id, correlation_id, reply, principal)
        wait = self._timeout(timeout)
        try:
            result: CommandResult = reply.get(wait)
        except Timeout:
            raise self._timed_out(command, cid, stream_id, wait, reply) from None
        return result

    async def send_async(
        self,
        command: object,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
        principal: Principal | None = None,
    ) -> CommandResult:
        """`send` for asyncio code: awaits the result without blocking the event loop."""
        reply = Reply(loop=asyncio.get_running_loop())
        cid, stream_id = self._send(command, command_id, correlation_id, reply, principal)
        wait = self._timeout(timeout)
        try:
            result: CommandResult = await asyncio.wait_for(reply.wait(), wait)
        except TimeoutError:
            raise self._timed_out(command, cid, stream_id, wait, reply) from None
        return result

    def _send(
        self,
        command: object,
        command_id: str | None,
        correlation_id: str | None,
        reply: Reply,
        principal: Principal | None = None,
    ) -> tuple[str, str]:
        """Check `command` (and that `principal` may send it) and hand it to its route;
        its command id and stream."""
        self._running()
        spec = self._commands.spec(command)
        stream_id = self._commands.stream_of(spec, command)
        cid = command_id or new_id()
        cause = None
        if (caused := acting_on.get()) is not None:  # sent by a subscriber: in its event's flow
            cause, flow = caused
            correlation_id = correlation_id or flow
        if self._gov.policy is not None:  # (no policy: nothing to check, nothing to build)
            where = f"stream {stream_id}, command {cid}"
            self._gov.check(principal, "send", qualified_name(type(command)), where)
        tracing = self._observe.tracing
        handle = Handle(
            command=command,
            command_id=cid,
            correlation_id=correlation_id or cid,
            reply=reply,
            given_id=command_id is not None,
            principal=principal,
            audit=self._gov.audits,
            cause=cause,
            sent_at=time.perf_counter(),
            trace=tracing.capture() if tracing.enabled else None,
        )
        assert self._route is not None
        self._route.deliver(spec, stream_id, handle)
        return cid, stream_id

    def publish(
        self,
        event: object,
        *,
        stream: str,
        expected_version: int | None = None,
        event_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        principal: Principal | None = None,
    ) -> CommandResult:
        """Append an event no aggregate produces (an integration event, a fact from outside)
        to `stream`, and wait until it is durable.

        With an `event_id`, publishing it to the same stream again stores nothing and
        returns what is stored (`DuplicateEventId` if another stream holds that id).
        `correlation_id`, `causation_id` and `metadata` (a JSON object) are stored with it.
        With a policy, `Unauthorized` unless `principal` may publish its type (nothing is
        stored); the principal is kept in the metadata.
        """
        parts = self._running_parts()
        type_name = self.registry.type_names([type(event)])[0]
        self._gov.check(principal, "publish", type_name, f"stream {stream}")
        new = NewEvent(
            event,
            event_id=event_id or new_id(),
            correlation_id=correlation_id,
            causation_id=causation_id,
            metadata={
                **(metadata or {}),
                **(principal_metadata(principal) or {}),
                **self._observe.tracing.carrier(),  # (tracing on: the caller's trace)
            },
        )
        trail = (entry(principal, "publish", type_name, ACCEPTED, f"stream {stream}"),)
        reply = Reply()
        request = AppendRequest(
            append=Append(
                stream_id=stream,
                records=[parts.store.record(new)],
                expected_version=expected_version,
                audit=trail if self._gov.audits else (),
            ),
            events=(event,),
            reply=reply,
        )
        if timeout is None:
            run_here(lambda: tell(parts.tree.journal, request), reply.done)
        else:
            tell(parts.tree.journal, request)
        done: Appended = reply.get(self._timeout(timeout))
        last = done.envelopes[-1]
        return CommandResult(
            stream_id=stream, version=last.seq, position=last.position, events=done.envelopes
        )

    def _publish_all(self, items: Sequence[tuple[NewEvent, str]]) -> list[Appended | ReactorError]:
        """Append each `(event, stream)` at once (so that they commit together) and wait
        until each is durable: its `Appended`, or the error that refused it. For the bus's
        inbox, on a thread of its own (never an actor's)."""
        parts = self._running_parts()
        answers: list[Reply | ReactorError] = []
        requests: list[AppendRequest] = []
        for new, stream in items:
            try:
                append = Append(stream, [parts.store.record(new)], None)
            except ReactorError as e:  # this one cannot be stored; the others can
                answers.append(e)
                continue
            reply = Reply()
            requests.append(AppendRequest(append, (new.event,), reply=reply))
            answers.append(reply)
        if requests:
            journal, last = parts.tree.journal, reply

            def hand_over() -> None:
                for request in requests:
                    tell(journal, request)

            run_here(hand_over, last.done)
        return [a if isinstance(a, ReactorError) else self._appended(a) for a in answers]

    def _appended(self, reply: Reply) -> Appended | ReactorError:
        try:
            done: Appended = reply.get(self.settings.timeout)
        except ReactorError as e:
            return e
        return done

    def _timed_out(
        self, command: object, command_id: str, stream_id: str, timeout: float, reply: Reply
    ) -> Timeout:
        """The caller gives up: counted as timed out now (not when it is answered)."""
        reply.abandoned = True
        self._observe.metrics.record_command(type(command).__name__, "timed_out", timeout)
        return _timeout(command, command_id, stream_id, timeout)


def _timeout(command: object, command_id: str, stream_id: str, timeout: float) -> Timeout:
    return Timeout(
        f"{type(command).__name__} (command id {command_id!r}) got no answer within "
        f"{timeout:g}s from the aggregate of stream {stream_id!r}; it may still complete: "
        f"send it again with command_id={command_id!r} to learn its outcome (nothing is "
        "stored twice)"
    )
