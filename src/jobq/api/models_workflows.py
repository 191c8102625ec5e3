"""The API's shapes for /v1/workflows: a graph of named job requests, and a workflow's state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from jobq.graph import MAX_WORKFLOW_NODES, NODE_NAME_PATTERN
from jobq.job_request import JobRequest
from jobq.types import JobStatus

NodeName = Annotated[str, StringConstraints(pattern=NODE_NAME_PATTERN, strict=True)]


class WorkflowNodeRequest(JobRequest):
    """A job request with a name in the workflow and the names it runs after."""

    name: NodeName = Field(description="Unique in the workflow.")
    after: list[NodeName] = Field(
        default_factory=list,
        max_length=MAX_WORKFLOW_NODES,
        description="Nodes this one runs after (it stays `pending` until they ended).",
    )


class WorkflowRequest(BaseModel):
    """A graph of jobs submitted in one transaction: no cycles, known kinds."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly",
                    "nodes": [
                        {"name": "fetch", "kind": "fetch"},
                        {"name": "a", "kind": "parse", "after": ["fetch"]},
                        {"name": "b", "kind": "parse", "after": ["fetch"]},
                        {"name": "report", "kind": "report", "after": ["a", "b"]},
                    ],
                }
            ]
        },
    )

    name: str | None = Field(default=None, max_length=200, description="A label.")
    nodes: list[WorkflowNodeRequest] = Field(min_length=1, max_length=MAX_WORKFLOW_NODES)


class WorkflowNodeOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    job_id: UUID
    kind: str
    queue: str
    status: JobStatus
    last_error: str | None
    after: list[str]


class WorkflowSummaryOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID
    name: str | None
    node_count: int
    created_at: datetime
    counts: dict[str, int] = Field(description="Jobs per state.")


class WorkflowOut(WorkflowSummaryOut):
    nodes: list[WorkflowNodeOut]


class WorkflowList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflows: list[WorkflowSummaryOut]
