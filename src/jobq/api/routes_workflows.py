"""Routes under /v1/workflows: validate, call `client.workflows`, shape the answer. No SQL here.

Scopes (jobq.api.auth): submitting a workflow enqueues jobs, so it is `write`
like an enqueue; GET is `read`; cancelling is `admin` like a job's cancel.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from jobq.api.auth import authorize
from jobq.api.dependencies import ClientDep, error_responses
from jobq.api.models import CountOut
from jobq.api.models_workflows import (
    WorkflowList,
    WorkflowListQuery,
    WorkflowOut,
    WorkflowRequest,
)
from jobq.client_workflows import WorkflowDetail
from jobq.graph import GraphNode
from jobq.types import WorkflowRow, format_timestamp

router = APIRouter(prefix="/v1", tags=["workflows"], dependencies=[Depends(authorize)])

WorkflowId = Annotated[UUID, Path(alias="id", description="The workflow's id.")]
_NOT_FOUND = {"e404": "No workflow has this id."}


def summary_dict(row: WorkflowRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "node_count": row.node_count,
        "created_at": format_timestamp(row.created_at),
        "counts": row.counts,
    }


def detail_dict(detail: WorkflowDetail) -> dict[str, Any]:
    nodes = [
        {
            "name": n.name,
            "job_id": str(n.job_id),
            "kind": n.kind,
            "queue": n.queue,
            "status": n.status.value,
            "last_error": n.last_error,
            "after": n.after,
        }
        for n in detail.nodes
    ]
    return {**summary_dict(detail.workflow), "nodes": nodes}


@router.post(
    "/workflows",
    response_model=WorkflowOut,
    status_code=201,
    summary="Submit a workflow",
    description=(
        "A graph of named jobs in one transaction: each node runs after the nodes it names "
        "in `after` (it stays `pending` until they ended) and gets their results "
        "(`ctx.dependency_results()`). A failed or cancelled node cancels the nodes after it "
        "(their `last_error` names it) unless they say `on_dependency_failure: run`. 422 for "
        "a cycle, an unknown node name or kind, or more than 10,000 nodes."
    ),
    responses={
        201: {"headers": {"Location": {"schema": {"type": "string"}, "required": True}}},
        **error_responses(413, 422),
    },
)
async def create_workflow(
    request: Request, body: Annotated[WorkflowRequest, Body()], client: ClientDep
) -> Response:
    # A node is a JobRequest (a subclass): validated once, by the body's model.
    nodes = [GraphNode(n.name, n, tuple(n.after)) for n in body.nodes]
    submitted = await client.workflows.submit(nodes, name=body.name)
    assert submitted.workflow_id is not None
    detail = await client.workflows.get(submitted.workflow_id)
    location = f"{request.scope.get('root_path', '')}/v1/workflows/{submitted.workflow_id}"
    return JSONResponse(detail_dict(detail), status_code=201, headers={"Location": location})


@router.get(
    "/workflows",
    response_model=WorkflowList,
    summary="List workflows",
    description="The newest workflows (and batches) first, with their jobs per state; with "
    "`job_id`, the workflow that job belongs to (none or one).",
    responses=error_responses(422),
)
async def list_workflows(
    query: Annotated[WorkflowListQuery, Query()], client: ClientDep
) -> Response:
    if query.job_id is not None:
        rows = await client.workflows.of_job(query.job_id)
    else:
        rows = await client.workflows.recent(query.limit)
    return JSONResponse({"workflows": [summary_dict(r) for r in rows]})


@router.get(
    "/workflows/{id}",
    response_model=WorkflowOut,
    summary="Get a workflow",
    description="Each node's job, state and the nodes it runs after.",
    responses=error_responses(404, 422, **_NOT_FOUND),
)
async def get_workflow(workflow_id: WorkflowId, client: ClientDep) -> Response:
    return JSONResponse(detail_dict(await client.workflows.get(workflow_id)))


@router.post(
    "/workflows/{id}/cancel",
    response_model=CountOut,
    summary="Cancel a workflow",
    description=(
        "Every job of the workflow not yet ended: pending, queued and retrying ones are "
        "cancelled, running ones get a cancel request (as a job's cancel). `count` is how "
        "many changed."
    ),
    responses=error_responses(404, 422, **_NOT_FOUND),
)
async def cancel_workflow(workflow_id: WorkflowId, client: ClientDep) -> Response:
    return JSONResponse({"count": await client.workflows.cancel(workflow_id)})
