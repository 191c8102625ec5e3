"""The API's job model matches the one job definition, `jobq.types.Job` (a drift check).

`JobOut` is declared field by field for FastAPI's schema; this test fails as
soon as a column is added to `Job` (JOB_FIELDS) and not to `JobOut`, or the
other way round, or their types differ.
"""

from __future__ import annotations

import typing

from jobq.api.models import JobListItem, JobOut
from jobq.types import JOB_FIELDS, Job
from tests.support import make_job


def test_job_out_has_the_jobs_public_fields_with_the_same_types() -> None:
    hints = typing.get_type_hints(Job)
    assert tuple(JobOut.model_fields) == JOB_FIELDS
    for name in JOB_FIELDS:
        assert JobOut.model_fields[name].annotation == hints[name], name
    assert tuple(JobListItem.model_fields) == JOB_FIELDS


def test_to_dict_is_the_job_out_shape() -> None:
    job = make_job(retry_delay_ms=5)
    data = job.to_dict()
    assert tuple(data) == JOB_FIELDS
    assert "retry_delay_ms" not in data and "lease_expires_at" not in data
    assert data["id"] == str(job.id) and data["status"] == "running"
    assert data["run_at"].endswith("Z") and data["finished_at"] is None
    assert JobOut.model_validate(data).id == job.id
