"""The alert rules, the gauges a run pushes and docs/monitoring.md stay in step.

(promtool checks and unit-tests the rules themselves: `make rules`, part of make test.)
"""

from __future__ import annotations

import re
from pathlib import Path

from wearables_ingest import report
from wearables_ingest.results import RunResult

REPO = Path(__file__).resolve().parents[2]
RULES = (REPO / "monitoring" / "alerts.yml").read_text()
RULE_TESTS = (REPO / "monitoring" / "alerts.test.yml").read_text()
MONITORING_PAGE = (REPO / "docs" / "monitoring.md").read_text()
LIMITS = {"success_max_age": 93_600.0, "newest_row_max_age": 172_800.0}


def pushed_names() -> set[str]:
    """Every gauge a run can push: a run with a known last success and newest rows."""
    gauges = report.run_gauges(RunResult(), 1.0, 1_704_700_800.0, 1_704_690_000.0, LIMITS,
                               {(1, "hr"): 1_704_697_200.0})
    return {g.full_name for g in gauges}


def test_the_rules_use_only_gauges_a_run_pushes():
    used = set(re.findall(r"\bwearables_ingest_[a-z_]+\b", RULES))
    assert used and used <= pushed_names(), used - pushed_names()


def test_every_alert_has_unit_tests_and_a_line_in_the_docs():
    alerts = re.findall(r"^\s*- alert: (\w+)", RULES, re.MULTILINE)
    assert len(alerts) == 4
    for alert in alerts:
        assert f"alertname: {alert}" in RULE_TESTS, alert
        assert f"`{alert}`" in MONITORING_PAGE, alert


def test_every_pushed_gauge_is_documented():
    missing = {name for name in pushed_names() if f"`{name}`" not in MONITORING_PAGE}
    assert not missing


def test_gauge_names_end_in_a_unit_or_say_what_they_count():
    # Prometheus' naming guide: the unit as the suffix (seconds, rows, files); a 0/1 gauge
    # and the status set say so in their names.
    for name in pushed_names():
        assert re.search(r"_(seconds|rows|files|success|status)$", name), name
