"""Submitting and reading graphs of jobs: `depends_on`, workflows, batches.

One transaction per submission: mark the existing jobs depended on (locking
them, so one that ends meanwhile resolves the new edges, and one that had
ended is known here), insert every job with one statement (unnest), the edges
with another, the workflow's node names with a third, then resolve the jobs
inserted as cancelled that others wait for. `Client` owns one `WorkflowOps`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from jobq.db.queries import Conn, Queries
from jobq.db.records import InsertRow
from jobq.enqueue_plan import emit_enqueued
from jobq.errors import FieldError, InvalidRequestError, WorkflowNotFoundError
from jobq.graph import GraphNode, check_graph, plan_graph
from jobq.ids import uuid7
from jobq.job_request import JobRequest
from jobq.types import DependencyResult, Job, JobStatus, WorkflowNode, WorkflowRow

RowFor = Callable[[JobRequest, tuple[str | int, ...], frozenset[str] | None], InsertRow]
MAX_WORKFLOW_LIST = 500


@dataclass(frozen=True, slots=True)
class Submitted:
    """A submitted graph: its workflow id (None for a plain `depends_on` enqueue)
    and each node's job, in the order given."""

    workflow_id: uuid.UUID | None
    jobs: dict[str, Job]


@dataclass(frozen=True, slots=True)
class WorkflowDetail:
    workflow: WorkflowRow
    nodes: list[WorkflowNode]


class WorkflowOps:
    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        row_for: RowFor,
        known_kinds: Callable[[], list[str] | None],
    ) -> None:
        self.pool = pool
        self.queries = queries
        self._row_for = row_for
        self._known_kinds = known_kinds

    async def submit(
        self,
        nodes: Sequence[GraphNode],
        *,
        name: str | None = None,
        workflow: bool = True,
        connection: asyncpg.Connection | None = None,
        loc: str = "nodes",
    ) -> Submitted:
        """Validate and insert `nodes` in one transaction (a savepoint in
        `connection`'s); `workflow=False` records no workflow (`depends_on`)."""
        check_graph(nodes, loc)
        known = self._known_kinds()
        known_set = frozenset(known) if known is not None else None
        rows = []
        for i, node in enumerate(nodes):
            where = _where(loc, i)
            if node.request.idempotency_key is not None:
                message = "an idempotency key cannot go with depends_on or a workflow"
                raise InvalidRequestError(
                    message, [FieldError((*where, "idempotency_key"), message)]
                )
            rows.append(self._row_for(node.request, where, known_set))
        if connection is not None:
            async with connection.transaction():
                return await self._insert(connection, nodes, rows, name, workflow, loc)
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._insert(conn, nodes, rows, name, workflow, loc)

    async def _insert(
        self,
        conn: Conn,
        nodes: Sequence[GraphNode],
        rows: list[InsertRow],
        name: str | None,
        workflow: bool,
        loc: str,
    ) -> Submitted:
        wanted = list(dict.fromkeys(d for n in nodes for d in n.request.depends_on or ()))
        existing = await self.queries.job_mark_depended_on(conn, wanted) if wanted else {}
        missing = [
            FieldError((*_where(loc, i), "depends_on", j), f"no job {dep}")
            for i, n in enumerate(nodes)
            for j, dep in enumerate(n.request.depends_on or ())
            if dep not in existing
        ]
        if missing:
            raise InvalidRequestError(f"depends_on: {missing[0].message}", missing[:100])
        plan = plan_graph(nodes, rows, existing)
        jobs = await self.queries.job_insert_graph(conn, plan.rows)
        if plan.edges:
            await self.queries.job_dependency_insert_many(conn, plan.edges)
        workflow_id = None
        if workflow:
            workflow_id = uuid7()
            pairs = [(n.name, r.id) for n, r in zip(nodes, rows, strict=True)]
            await self.queries.workflow_insert(conn, workflow_id, name, pairs)
        if plan.cancelled_with_dependents:
            ended = [(i, JobStatus.CANCELLED) for i in plan.cancelled_with_dependents]
            await self.queries.job_resolve_dependencies(conn, ended)
            jobs = await self.queries.job_get_many(conn, [r.id for r in rows])
        by_id = {j.id: j for j in jobs}
        emit_enqueued(jobs)
        return Submitted(
            workflow_id, {n.name: by_id[r.id] for n, r in zip(nodes, rows, strict=True)}
        )

    async def get(self, workflow_id: uuid.UUID) -> WorkflowDetail:
        row = await self.queries.workflow_get(self.pool, workflow_id)
        if row is None:
            raise WorkflowNotFoundError(workflow_id)
        return WorkflowDetail(row, await self.queries.workflow_nodes(self.pool, workflow_id))

    async def recent(self, limit: int = 50) -> list[WorkflowRow]:
        """The newest workflows, newest first."""
        if not 1 <= limit <= MAX_WORKFLOW_LIST:
            message = f"must be between 1 and {MAX_WORKFLOW_LIST}"
            raise InvalidRequestError(f"limit {message}", [FieldError(("limit",), message)])
        return await self.queries.workflow_list(self.pool, limit)

    async def cancel(self, workflow_id: uuid.UUID) -> int:
        """Cancel every job of the workflow not yet ended; the number changed."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await self.queries.workflow_get(conn, workflow_id) is None:
                raise WorkflowNotFoundError(workflow_id)
            return await self.queries.workflow_cancel(conn, workflow_id)

    async def of_job(self, job_id: uuid.UUID) -> list[WorkflowRow]:
        """The workflow a job belongs to, as a list of none or one."""
        found = await self.queries.workflow_of_job(self.pool, job_id)
        if found is None:
            return []
        row = await self.queries.workflow_get(self.pool, found[0])
        return [row] if row is not None else []

    async def dependency_results(self, job_id: uuid.UUID) -> list[DependencyResult]:
        found = await self.queries.job_dependency_results(self.pool, job_id)
        return [DependencyResult(i, n, s, r) for i, s, r, n in found]


def _where(loc: str, index: int) -> tuple[str | int, ...]:
    """Where node `index`'s errors are: under `loc` (nodes, jobs), or at the top
    for the one job of an enqueue (`loc` empty)."""
    return (loc, index) if loc else ()
