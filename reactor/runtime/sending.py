"""Sending: `send`, `submit`, `send_async` and `publish`, the commands and facts a runtime
takes in (each checked, then handed to its `CommandRoute` or the journal)."""

from __future__ import annotations

import asyncio

from reactor.actors.dispatch import current_dispatcher, run_here
from reactor.actors.messages import Appended, AppendRequest, Handle, Reply
from reactor.actors.pooled import tell
from reactor.errors import ReactorError, Timeout
from reactor.events import CommandResult, NewEvent, new_id
from reactor.registry import qualified_name
from reactor.runtime.core import RuntimeCore
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
            raise _timed_out(command, cid, stream_id, wait) from None
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
            raise _timed_out(command, cid, stream_id, wait) from None
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
        where = f"stream {stream_id}, command {cid}"
        self._gov.check(principal, "send", qualified_name(type(command)), where)
        handle = Handle(
            command=command,
            command_id=cid,
            correlation_id=correlation_id or cid,
            reply=reply,
            given_id=command_id is not None,
            principal=principal,
            audit=self._gov.audits,
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
        correlation_id: str | None = None,
        timeout: float | None = None,
        principal: Principal | None = None,
    ) -> CommandResult:
        """Append an event no aggregate produces (an integration event, a fact from outside)
        to `stream`, and wait until it is durable. With a policy, `Unauthorized` unless
        `principal` may publish its type (nothing is stored)."""
        parts = self._running_parts()
        type_name = self.registry.type_names([type(event)])[0]
        self._gov.check(principal, "publish", type_name, f"stream {stream}")
        meta = principal_metadata(principal) or {}
        record = parts.store.record(NewEvent(event, correlation_id=correlation_id, metadata=meta))
        trail = (entry(principal, "publish", type_name, ACCEPTED, f"stream {stream}"),)
        reply = Reply()
        request = AppendRequest(
            append=Append(
                stream_id=stream,
                records=[record],
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


def _timed_out(command: object, command_id: str, stream_id: str, timeout: float) -> Timeout:
    return Timeout(
        f"{type(command).__name__} (command id {command_id!r}) got no answer within "
        f"{timeout:g}s from the aggregate of stream {stream_id!r}; it may still complete: "
        f"send it again with command_id={command_id!r} to learn its outcome (nothing is "
        "stored twice)"
    )
