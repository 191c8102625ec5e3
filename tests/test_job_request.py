"""Names validated by pattern (issue 12, finding 14): a trailing newline is not a name.

Python's `re.match` with `$` accepts "default\n" (`$` matches before a final
newline); pydantic-core's Rust regex does not. Every check of jobq's patterns
must refuse it: the pydantic models, and the Python checks (fullmatch).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobq import App
from jobq.api.models import BulkFilter, JobListQuery
from jobq.job_request import JobRequest

TRAILING = ["\n", "\r\n", " ", "\t"]


@pytest.mark.parametrize("tail", TRAILING, ids=repr)
def test_the_job_request_model_refuses_a_name_with_a_trailing_newline(tail: str) -> None:
    assert JobRequest(kind="noop", queue="default").queue == "default"
    with pytest.raises(ValidationError, match="kind"):
        JobRequest(kind="noop" + tail)
    with pytest.raises(ValidationError, match="queue"):
        JobRequest(kind="noop", queue="default" + tail)
    with pytest.raises(ValidationError):
        BulkFilter(queue="default" + tail)
    with pytest.raises(ValidationError):
        BulkFilter(kind="noop" + tail)
    with pytest.raises(ValidationError):
        JobListQuery(queue="default" + tail)
    with pytest.raises(ValidationError):
        JobListQuery(kind="noop" + tail)


def test_a_kind_with_a_trailing_newline_cannot_be_registered() -> None:
    app = App()
    with pytest.raises(ValueError, match="must match"):
        app.register("noop\n", lambda ctx, payload: None)
