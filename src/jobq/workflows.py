"""The library's builders of graphs: `app.workflow()` and `app.batch()`.

A builder collects nodes and submits them in one call, one transaction
(`jobq.client_workflows`). A batch is a workflow whose callbacks run after
every member: `on_finish` whatever the members did (policy "run"),
`on_success` only when every member succeeded (policy "cancel": a failed
member cancels it), `on_failure` only when one did not (policy
"failure_only": cancelled when every member succeeded). A callback reads the members' outcomes with
`await ctx.dependency_results()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from jobq.client import Client
from jobq.client_workflows import Submitted
from jobq.errors import FieldError, InvalidRequestError
from jobq.graph import GraphNode
from jobq.job_request import parse_request

ClientGetter = Callable[[], Awaitable[Client]]


def _request_fields(
    kind: str,
    payload: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": kind}
    if payload is not None:
        fields["payload"] = dict(payload)
    fields.update({k: v for k, v in options.items() if v is not None})
    return fields


class WorkflowBuilder:
    """`app.workflow(name).add("a", "fetch", {...}).add("b", "parse", after=["a"]).submit()`."""

    def __init__(self, client: ClientGetter, name: str | None = None) -> None:
        self._client = client
        self.name = name
        self._nodes: list[GraphNode] = []

    def add(
        self,
        name: str,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        after: Sequence[str] = (),
        on_dependency_failure: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        run_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> WorkflowBuilder:
        """Add node `name` running `kind` after the nodes `after` (names added
        before or later: the graph is checked at submit)."""
        options = {
            "on_dependency_failure": on_dependency_failure,
            "queue": queue,
            "priority": priority,
            "max_attempts": max_attempts,
            "run_at": run_at,
            "metadata": dict(metadata) if metadata is not None else None,
        }
        index = len(self._nodes)
        request = parse_request(_request_fields(kind, payload, options), ("nodes", index))
        if isinstance(after, str):
            message = "after is a list of node names"
            raise InvalidRequestError(message, [FieldError(("nodes", index, "after"), message)])
        self._nodes.append(GraphNode(name, request, tuple(after)))
        return self

    def __len__(self) -> int:
        return len(self._nodes)

    def set_policy(self, name: str, policy: str) -> None:
        """Give node `name`'s edges `policy` ("cancel", "run" or "failure_only")."""
        self._nodes = [
            GraphNode(n.name, n.request, n.after, policy) if n.name == name else n
            for n in self._nodes
        ]

    @property
    def nodes(self) -> list[GraphNode]:
        """The nodes added so far, in order."""
        return list(self._nodes)

    async def submit(self, *, connection: asyncpg.Connection | None = None) -> Submitted:
        """Validate and insert the whole graph in one transaction; `.workflow_id`
        and each node's job by name (`.jobs["b"]`)."""
        client = await self._client()
        return await client.workflows.submit(self._nodes, name=self.name, connection=connection)


class BatchBuilder:
    """`app.batch().add("resize", {...})...on_finish("report").submit()`: the
    callbacks run once, after the last member ended."""

    def __init__(self, client: ClientGetter, name: str | None = None) -> None:
        self._workflow = WorkflowBuilder(client, name)
        self._members: list[str] = []
        self._callbacks: list[tuple[str, str, Mapping[str, Any] | None, dict[str, Any]]] = []

    def add(
        self, kind: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> BatchBuilder:
        """Add a member (options as `app.enqueue`'s: queue, priority, ...)."""
        name = f"member-{len(self._members)}"
        self._workflow.add(name, kind, payload, **options)
        self._members.append(name)
        return self

    def on_finish(
        self, kind: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> BatchBuilder:
        """The job to run once every member ended, whatever each did."""
        self._callbacks.append(("on_finish", kind, payload, {**options, "policy": "run"}))
        return self

    def on_failure(
        self, kind: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> BatchBuilder:
        """The job to run once every member ended if one of them failed for good or
        was cancelled (cancelled, "every dependency succeeded", when none did)."""
        self._callbacks.append(("on_failure", kind, payload, {**options, "policy": "failure_only"}))
        return self

    def on_success(
        self, kind: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> BatchBuilder:
        """The job to run once every member succeeded (cancelled when one fails)."""
        self._callbacks.append(("on_success", kind, payload, {**options, "policy": "cancel"}))
        return self

    async def submit(self, *, connection: asyncpg.Connection | None = None) -> Submitted:
        if not self._members:
            message = "a batch needs at least one member"
            raise InvalidRequestError(message, [FieldError(("nodes",), message)])
        for name, kind, payload, options in self._callbacks:
            policy = options.pop("policy")
            self._workflow.add(name, kind, payload, after=self._members, **options)
            self._workflow.set_policy(name, policy)
        self._callbacks.clear()
        return await self._workflow.submit(connection=connection)
