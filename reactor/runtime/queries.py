"""`rt.query(P, after=...)`: a proxy whose method calls run inside projection P's actor,
once it has handled every event up to a global position (read-your-writes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pykka import ActorRef

from reactor.actors.messages import Barrier, Query, Reply
from reactor.errors import Timeout
from reactor.specs import ConsumerType


class QueryProxy:
    """Calls a projection's public methods inside its actor, after a position. The router
    hands each call over once it has routed `after`, so the projection has every event up
    to it in its mailbox (or reads them from the journal) before the call."""

    def __init__(
        self,
        router: ActorRef[Any],
        ref: ActorRef[Any],
        spec: ConsumerType,
        after: int,
        timeout: float,
        check: Callable[[], None],
    ) -> None:
        self._router, self._ref, self._spec = router, ref, spec
        self._after, self._timeout, self._check = after, timeout, check

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method not in self._spec.queries:
            raise AttributeError(
                f"{self._spec.label} has no query {method!r}; its queries: "
                f"{', '.join(sorted(self._spec.queries)) or 'none'}"
            )

        def call(*args: Any, **kwargs: Any) -> Any:
            self._check()
            reply = Reply()
            query = Query(method=method, args=args, kwargs=kwargs, reply=reply, after=self._after)
            self._router.tell(Barrier(self._after, self._ref, query))
            try:
                return reply.get(self._timeout)
            except Timeout:
                raise Timeout(
                    f"query {self._spec.label}.{method}() got no answer within "
                    f"{self._timeout:g}s: the projection has not yet handled every event up "
                    f"to position {self._after} (it may be far behind, or retrying one)"
                ) from None

        return call
