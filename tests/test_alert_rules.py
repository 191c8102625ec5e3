"""The alerting rules do what docs/RUNBOOK.md says: `promtool test rules` feeds each alert
a series of the shape its fault produces (deploy/prometheus/alerts_test.yml) and checks
that it stays quiet until its `for:` has been waited out, then fires with the labels and
the text a person reads. Needs promtool (Debian's `prometheus` package; CI installs it)."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.support import skip_unless_required
from tests.test_runbook import ROOT, alert_rules

RULES_DIR = ROOT / "deploy" / "prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        skip_unless_required("promtool is not installed (apt-get install prometheus)")
    return path


def test_every_alert_has_a_unit_test_that_waits_out_its_for() -> None:
    tests = yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())
    checks: dict[str, list[dict[str, object]]] = {}
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            checks.setdefault(check["alertname"], []).append(check)
    for rule in alert_rules():
        name = str(rule["alert"])
        assert name in checks, f"{name} has no test in alerts_test.yml"
        # One evaluation before it may fire (pending, or not yet true) and one after.
        assert any(c["exp_alerts"] == [] for c in checks[name]), name
        assert any(c["exp_alerts"] for c in checks[name]), name


def test_promtool_checks_the_rules_and_runs_their_tests() -> None:
    tool = promtool()
    checked = subprocess.run(
        [tool, "check", "rules", "alerts.yml"], cwd=RULES_DIR, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [tool, "test", "rules", "alerts_test.yml"], cwd=RULES_DIR, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
