"""Graphs of jobs (workflows, batches, `depends_on`): validation and the insert plan, pure.

`check_graph` refuses what cannot be submitted (duplicate or unknown node
names, cycles, too many nodes) with every problem located; `plan_graph` turns
validated nodes, their rows and the states of the existing jobs they depend on
into the rows and edges `jobq.client_workflows` inserts in one transaction.
docs/DESIGN.md, "Jobs that wait for other jobs", says how they are resolved.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobq.db.records import Edge, GraphRow, InsertRow
from jobq.errors import FieldError, InvalidRequestError
from jobq.job_request import JobRequest
from jobq.types import JobStatus

# A workflow of more is refused; 10,000 is accepted in about a second (bench/workflows.py).
MAX_WORKFLOW_NODES = 10_000
NODE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
_NODE_NAME = re.compile(NODE_NAME_PATTERN)
_FAILED = frozenset({JobStatus.FAILED_PERMANENT, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A job of a graph: its name, what to run, and the nodes it runs after.
    `request.depends_on` names existing jobs it waits for as well."""

    name: str
    request: JobRequest
    after: tuple[str, ...] = ()
    # The edges' policy when not the request's on_dependency_failure: a batch's
    # on_failure callback is "failure_only" (runs only if a dependency failed).
    policy: str | None = None


def check_graph(nodes: Sequence[GraphNode], loc: str = "nodes") -> None:
    """InvalidRequestError naming every bad node, or a cycle's members."""
    if not 1 <= len(nodes) <= MAX_WORKFLOW_NODES:
        message = f"must hold 1 to {MAX_WORKFLOW_NODES} nodes, got {len(nodes)}"
        raise InvalidRequestError(f"a workflow {message}", [FieldError((loc,), message)])
    errors = _name_errors(nodes, loc)
    if errors:
        raise InvalidRequestError(f"invalid workflow: {errors[0].message}", errors[:100])
    cycle = find_cycle(nodes)
    if cycle:
        shown = " -> ".join(cycle[:20]) + (" -> ..." if len(cycle) > 20 else "")
        message = f"the nodes form a cycle (each runs after the next): {shown}"
        raise InvalidRequestError(message, [FieldError((loc,), message)])


def _name_errors(nodes: Sequence[GraphNode], loc: str) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if not _NODE_NAME.fullmatch(node.name):
            errors.append(FieldError((loc, i, "name"), f"must match {NODE_NAME_PATTERN}"))
        elif node.name in seen:
            errors.append(
                FieldError((loc, i, "name"), f"{node.name!r} is also node {seen[node.name]}")
            )
        else:
            seen[node.name] = i
    for i, node in enumerate(nodes):
        for j, name in enumerate(node.after):
            if name not in seen:
                errors.append(FieldError((loc, i, "after", j), f"no node is named {name!r}"))
            elif name == node.name:
                errors.append(FieldError((loc, i, "after", j), "a node cannot run after itself"))
    return errors


def find_cycle(nodes: Sequence[GraphNode]) -> list[str]:
    """One cycle as node names, each running after the next, the first repeated
    at the end; [] when there is none (Kahn's algorithm, then a walk back
    through the nodes it could not order)."""
    waiting = {n.name: len(set(n.after)) for n in nodes}
    dependents: dict[str, list[str]] = {n.name: [] for n in nodes}
    for n in nodes:
        for name in set(n.after):
            dependents[name].append(n.name)
    ready = [name for name, count in waiting.items() if count == 0]
    while ready:
        for dependent in dependents[ready.pop()]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    left = {name for name, count in waiting.items() if count > 0}
    if not left:
        return []
    after = {n.name: [a for a in n.after if a in left] for n in nodes if n.name in left}
    # Every node left waits for another node left: walking back must repeat one.
    path: list[str] = []
    index: dict[str, int] = {}
    name = min(left)
    while name not in index:
        index[name] = len(path)
        path.append(name)
        name = after[name][0]
    return [*path[index[name] :], name]


@dataclass(frozen=True, slots=True)
class GraphPlan:
    rows: list[GraphRow]
    edges: list[Edge]
    # Jobs inserted as cancelled (a dependency had already failed) that others
    # wait for: resolved after the insert, so the policy reaches them too.
    cancelled_with_dependents: list[uuid.UUID]


def plan_graph(
    nodes: Sequence[GraphNode],
    rows: Sequence[InsertRow],
    existing: Mapping[uuid.UUID, JobStatus],
) -> GraphPlan:
    """The rows and edges of validated `nodes` (`rows[i]` is node i's job), given
    the states of the existing jobs they depend on."""
    ids = {node.name: row.id for node, row in zip(nodes, rows, strict=True)}
    waited_for = {name for node in nodes for name in node.after}
    plan = GraphPlan([], [], [])
    for node, row in zip(nodes, rows, strict=True):
        policy = node.policy or node.request.on_dependency_failure
        external = list(dict.fromkeys(node.request.depends_on or ()))
        internal = list(dict.fromkeys(node.after))
        pending = len(internal)
        culprit: uuid.UUID | None = None
        for dep in external:
            status = existing[dep]
            if not status.is_terminal:
                pending += 1
            elif status in _FAILED and policy == "cancel" and culprit is None:
                culprit = dep
            plan.edges.append(Edge(dep, row.id, policy, resolved=status.is_terminal))
        plan.edges.extend(Edge(ids[name], row.id, policy, resolved=False) for name in internal)
        has_dependents = node.name in waited_for
        if culprit is not None:
            status = JobStatus.CANCELLED
            error: str | None = f"dependency {culprit} ended {existing[culprit]}"
            if has_dependents:
                plan.cancelled_with_dependents.append(row.id)
        else:
            status = JobStatus.PENDING if pending else JobStatus.QUEUED
            error = None
        count = pending if internal or external else None
        plan.rows.append(GraphRow(row, status, count, has_dependents, error))
    return plan
