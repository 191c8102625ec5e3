"""Every alert links its section of docs/RUNBOOK.md, and the runbook covers the faults."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lower case, punctuation dropped)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.MULTILINE)
    return {github_anchor(h) for h in headings}


def alert_rules() -> list[dict[str, object]]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_github_anchor() -> None:
    assert github_anchor("Dead tuples and a long-held transaction") == (
        "dead-tuples-and-a-long-held-transaction"
    )


def test_every_alert_has_a_runbook_url_that_names_a_heading() -> None:
    anchors = runbook_anchors()
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        url = annotations.get("runbook_url")
        assert isinstance(url, str), f"{rule['alert']} has no runbook_url"
        path, _, anchor = url.partition("#")
        assert path == "docs/RUNBOOK.md", url
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"


def test_every_alert_is_named_in_its_section() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = dict(
        (github_anchor(m.group(1)), m.group(2))
        for m in re.finditer(r"^## (.+)\n((?:(?!^## ).*\n?)*)", text, re.MULTILINE)
    )
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        anchor = str(annotations["runbook_url"]).partition("#")[2]
        assert f"`{rule['alert']}`" in sections[anchor], rule["alert"]


def test_the_runbook_covers_the_faults_operators_meet() -> None:
    anchors = runbook_anchors()
    assert {
        "database-down-or-unreachable",
        "jobs-piling-up",
        "oldest-runnable-job-too-old",
        "leases-expiring",
        "queue-paused-too-long",
        "failure-rate-spike",
        "dead-tuples-and-a-long-held-transaction",
        "the-embedded-server-does-not-start",
        "no-live-worker",
        "schedule-runs-skipped",
    } <= anchors
