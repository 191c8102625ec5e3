"""The API's shapes for /v1/workflows: a graph of named job requests, and a workflow's state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.config import JsonDict

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


_SUMMARY_EXAMPLE: JsonDict = {
    "id": "0192f0c4-7a10-7c3e-9d2a-3f1e5b6c7d80",
    "name": "nightly",
    "node_count": 2,
    "created_at": "2026-12-02T09:00:00Z",
    "counts": {"succeeded": 1, "pending": 1},
}
_NODE_EXAMPLE: JsonDict = {
    "name": "report",
    "job_id": "0192f0c4-7a10-7c3e-9d2a-3f1e5b6c7d82",
    "kind": "report",
    "queue": "default",
    "status": "pending",
    "last_error": None,
    "after": ["fetch"],
}


class WorkflowNodeOut(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_NODE_EXAMPLE]})

    name: str
    job_id: UUID
    kind: str
    queue: str
    status: JobStatus
    last_error: str | None
    after: list[str]


class WorkflowSummaryOut(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_SUMMARY_EXAMPLE]})

    id: UUID
    name: str | None
    node_count: int
    created_at: datetime
    counts: dict[str, int] = Field(description="Jobs per state.")


class WorkflowOut(WorkflowSummaryOut):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_SUMMARY_EXAMPLE, "nodes": [_NODE_EXAMPLE]}]},
    )

    nodes: list[WorkflowNodeOut]


class WorkflowList(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"workflows": [_SUMMARY_EXAMPLE]}]}
    )

    workflows: list[WorkflowSummaryOut]


class WorkflowListQuery(BaseModel):
    """Parameters of GET /v1/workflows; unknown parameters are rejected."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=500, description="How many, newest first.")
    job_id: UUID | None = Field(default=None, description="Only the workflow of this job.")
