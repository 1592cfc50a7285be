"""status.py, its settings, its text and JSON (report.py), its heat map (plot.py): no database."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from wearables_ingest import plot, report, status
from wearables_ingest.errors import ConfigError
from wearables_ingest.settings import load, parse_expected_rows
from wearables_ingest.status import Expectations, Run

NOW = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
RULES = Expectations({"hr": 86_400, "azm": 1_440, "activity": 1, "br": 1})
SVG = "{http://www.w3.org/2000/svg}"


def ok_run(hours_ago: float = 8.0, status_: str = "ok") -> Run:
    finished = NOW - timedelta(hours=hours_ago)
    return Run(12, finished - timedelta(seconds=30), finished, status_, "cron")


def full_study(days: int = 7) -> dict:
    """Participants 1-3, hr and spo2, every day complete, ending 2024-01-07."""
    daily = {}
    for day in (date(2024, 1, 7) - timedelta(days=i) for i in range(days)):
        for p in (1, 2, 3):
            daily[(p, "hr", day)] = 86_400
            daily[(p, "spo2", day)] = 441
    return daily


def evaluate(daily, run=None, rules=RULES, first=date(2024, 1, 1), last=date(2024, 1, 7)):
    pairs = {(p, m) for p, m, _ in daily}
    return status.evaluate(pairs, daily, first, last, rules,
                           ok_run() if run is None else run, NOW)


# --- rating days ------------------------------------------------------------------------------

@pytest.mark.parametrize("rows, expected, rated", [
    (86_400, 86_400, "complete"), (82_080, 86_400, "complete"),  # exactly 95%
    (82_079, 86_400, "partial"), (1, 86_400, "partial"), (0, 86_400, "missing"),
    (90_000, 86_400, "complete"),  # a 25-hour day in a zone with DST
    (1, None, "complete"), (0, None, "missing"),  # no fixed count: present or missing
])
def test_a_day_is_complete_at_the_threshold_partial_below_and_missing_without_rows(
        rows, expected, rated):
    assert status.rate(rows, expected, 95) == rated


def test_a_missing_half_day_is_partial_and_the_rest_complete():
    daily = full_study()
    daily[(2, "hr", date(2024, 1, 5))] = 43_200
    st = evaluate(daily)
    assert [(d.participant, d.metric, d.day, d.status) for d in st.incomplete()] == [
        (2, "hr", date(2024, 1, 5), "partial")]
    assert len(st.days) == 3 * 2 * 7
    assert not st.complete and not st.ok


def test_every_pair_is_on_every_day_and_a_day_without_rows_is_missing():
    daily = full_study()
    del daily[(3, "spo2", date(2024, 1, 2))]
    st = evaluate(daily)
    [gap] = st.incomplete()
    assert (gap.participant, gap.metric, gap.day, gap.rows, gap.expected, gap.status) == \
        (3, "spo2", date(2024, 1, 2), 0, None, "missing")


def test_the_period_ends_at_the_newest_day_in_the_time_zone():
    assert status.period(date(2024, 1, 7), 7) == (date(2024, 1, 1), date(2024, 1, 7))
    assert status.period(date(2024, 1, 7), 1) == (date(2024, 1, 7), date(2024, 1, 7))
    newest = datetime(2024, 1, 7, 23, tzinfo=UTC)
    assert status.local_day(newest, "UTC") == date(2024, 1, 7)
    assert status.local_day(newest, "Europe/Berlin") == date(2024, 1, 8)
    assert status.local_day(newest, "America/New_York") == date(2024, 1, 7)


def test_options_choose_participants_and_metrics():
    pairs = [(1, "hr"), (2, "hr"), (2, "spo2"), (1, "hr")]
    assert status.chosen(pairs, None, None) == [(1, "hr"), (2, "hr"), (2, "spo2")]
    assert status.chosen(pairs, {2}, None) == [(2, "hr"), (2, "spo2")]
    assert status.chosen(pairs, None, {"spo2"}) == [(2, "spo2")]


def test_nothing_stored_is_not_complete():
    st = status.evaluate([], {}, None, None, RULES, ok_run(), NOW)
    assert st.days == () and not st.complete and not st.ok


# --- the last run -----------------------------------------------------------------------------

@pytest.mark.parametrize("run, problem", [
    (None, "no run is recorded in ingest_runs"),
    (ok_run(status_="failed"), "the last run (#12) ended failed"),
    (ok_run(status_="partial"), "the last run (#12) ended partial"),
    (Run(12, NOW - timedelta(hours=1), None, "running", "cron"),
     "the last run (#12, started 2024-01-08T08:00:00+00:00) has not finished: it is still "
     "going, or it crashed"),
    (ok_run(hours_ago=26.5), "the last run (#12) succeeded 26.5 h ago, longer than 26 h"),
])
def test_the_last_run_must_have_succeeded_within_the_max_age(run, problem):
    assert status.run_problem(run, NOW, 26) == problem
    st = status.evaluate([(1, "hr")], {(1, "hr", date(2024, 1, 7)): 86_400}, date(2024, 1, 7),
                         date(2024, 1, 7), RULES, run, NOW)
    assert st.complete and not st.ok


def test_a_recent_successful_run_and_complete_days_are_ok():
    assert status.run_problem(ok_run(hours_ago=25.9), NOW, 26) is None
    assert evaluate(full_study()).ok


# --- settings ---------------------------------------------------------------------------------

def test_status_settings_have_defaults(tmp_path):
    cfg = load({}, dotenv=tmp_path / "absent.env")
    assert cfg.status_expected_rows is None  # the database's metric_expected decides
    assert (cfg.status_complete_pct, cfg.status_tz, cfg.status_max_age_hours) == \
        (95.0, "UTC", 26.0)


def test_status_settings_are_read():
    cfg = load({"STATUS_EXPECTED_ROWS": " hr = 17280, azm=1440 ", "STATUS_COMPLETE_PCT": "99.5",
                "STATUS_TZ": "Europe/Berlin", "STATUS_MAX_AGE_HOURS": "48"}, dotenv=None)
    assert cfg.status_expected_rows == {"hr": 17_280, "azm": 1_440}
    assert (cfg.status_complete_pct, cfg.status_tz, cfg.status_max_age_hours) == \
        (99.5, "Europe/Berlin", 48.0)


@pytest.mark.parametrize("env, message", [
    ({"STATUS_EXPECTED_ROWS": "hr"}, "STATUS_EXPECTED_ROWS='hr': 'hr' is not metric=rows "
                                     "(e.g. hr=86400,azm=1440)"),
    ({"STATUS_EXPECTED_ROWS": "HR=1"}, "'HR=1' is not metric=rows"),
    ({"STATUS_EXPECTED_ROWS": "hr=0"}, "STATUS_EXPECTED_ROWS='hr=0': hr's rows a day, '0', is "
                                       "not a whole number of at least 1"),
    ({"STATUS_EXPECTED_ROWS": "hr=1.5"}, "hr's rows a day, '1.5', is not a whole number"),
    ({"STATUS_EXPECTED_ROWS": "hr=1,hr=2"}, "STATUS_EXPECTED_ROWS='hr=1,hr=2' names hr twice"),
    ({"STATUS_COMPLETE_PCT": "0"}, "STATUS_COMPLETE_PCT='0' must be more than 0 and at most "
                                   "100 percent"),
    ({"STATUS_COMPLETE_PCT": "most"}, "STATUS_COMPLETE_PCT='most' is not a number of percent"),
    ({"STATUS_TZ": "CET+1"}, "STATUS_TZ='CET+1' is not a time zone name such as Europe/Berlin"),
    ({"STATUS_MAX_AGE_HOURS": "-1"}, "STATUS_MAX_AGE_HOURS='-1' must be more than 0"),
])
def test_bad_status_settings_are_one_line_config_errors(env, message):
    with pytest.raises(ConfigError) as caught:
        load(env, dotenv=None)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_empty_expected_rows_leave_it_to_the_database():
    assert parse_expected_rows("") is None and parse_expected_rows("  ") is None


# --- text and JSON ----------------------------------------------------------------------------

def test_text_lists_incomplete_days_first_then_one_line_per_pair_and_a_verdict():
    daily = full_study()
    daily[(2, "hr", date(2024, 1, 5))] = 43_200
    del daily[(3, "spo2", date(2024, 1, 2))]
    lines = report.status_lines(evaluate(daily))
    assert [line.split() for line in lines[1:3]] == [
        ["2", "hr", "2024-01-05", "43,200", "86,400", "50%", "partial"],
        ["3", "spo2", "2024-01-02", "0", "–", "–", "missing"]]
    assert lines[3].split() == ["1", "hr", "2024-01-01..2024-01-07", "604,800", "604,800",
                                "100%", "complete", "(7", "days)"]
    assert len(lines) == 1 + 2 + 6 + 2
    assert lines[-2] == "last run: #12 ok (cron), finished 2024-01-08T01:00:00+00:00, 8.0 h ago"
    assert lines[-1] == ("NOT OK: 2 of 42 days incomplete in 2024-01-01..2024-01-07 (UTC days): "
                         "1 partial, 1 missing; the last run (#12) succeeded 8.0 h ago")


def test_the_verdict_of_a_good_morning():
    assert report.status_lines(evaluate(full_study()))[-1] == (
        "OK: all 42 days complete in 2024-01-01..2024-01-07 (UTC days); the last run (#12) "
        "succeeded 8.0 h ago")


def test_json_has_complete_days_and_last_run():
    daily = full_study()
    daily[(2, "hr", date(2024, 1, 5))] = 43_200
    out = json.loads(json.dumps(report.status_json(evaluate(daily))))
    assert {"ok", "complete", "days", "last_run"} <= set(out)
    assert (out["ok"], out["complete"], out["incomplete"]) == (False, False, 1)
    assert out["days"][0] == {"participant": 1, "metric": "hr", "day": "2024-01-01",
                              "rows": 86_400, "expected": 86_400, "status": "complete",
                              "share": 1.0}
    spo2 = next(d for d in out["days"] if d["metric"] == "spo2")
    assert (spo2["expected"], spo2["share"], spo2["status"]) == (None, None, "complete")
    assert out["last_run"] == {"run_id": 12, "started": "2024-01-08T00:59:30+00:00",
                               "finished": "2024-01-08T01:00:00+00:00", "status": "ok",
                               "trigger": "cron", "error": None, "metrics": None}
    no_run = report.status_json(status.evaluate([], {}, None, None, RULES, None, NOW))
    assert (no_run["last_run"], no_run["ok"], no_run["days"]) == (None, False, [])


# --- the heat map -----------------------------------------------------------------------------

def test_heat_map_is_valid_svg_with_a_cell_per_participant_metric_and_day():
    daily = full_study(days=14)
    daily[(2, "hr", date(2024, 1, 5))] = 43_200
    daily[(1, "hr", date(2024, 1, 6))] = 0
    st = evaluate(daily, first=date(2023, 12, 25))
    root = ET.fromstring(plot.heatmap_svg(st))
    assert root.tag == f"{SVG}svg"
    cells = {r.find(f"{SVG}title").text: r.get("fill") for r in root.iter(f"{SVG}rect")
             if r.find(f"{SVG}title") is not None}
    assert len(cells) == 3 * 2 * 14
    assert cells["participant 1, hr, 2024-01-01: 86,400 of 86,400 rows (100%), complete"] == \
        plot.GREEN
    assert cells["participant 1, hr, 2024-01-06: 0 of 86,400 rows (0%), missing"] == plot.RED
    half = cells["participant 2, hr, 2024-01-05: 43,200 of 86,400 rows (50%), partial"]
    assert half not in (plot.GREEN, plot.RED) and half == plot.amber(50 / 95)
    assert cells["participant 3, spo2, 2024-01-07: 441 rows (no fixed count), complete"] == \
        plot.GREEN
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"participant", "1", "2", "3", "12-26", "01-07"} <= set(texts)  # the newest labelled
    assert "day (UTC)" in texts and "hr  ·  86,400 rows expected a day" in texts


def test_amber_runs_from_dark_to_light_as_a_day_fills():
    shades = [plot.amber(f / 10) for f in range(11)]
    assert len(set(shades)) == 11
    assert sum(int(shades[0][i:i + 2], 16) for i in (1, 3, 5)) < \
        sum(int(shades[-1][i:i + 2], 16) for i in (1, 3, 5))


def test_heat_map_of_an_empty_study_still_parses():
    st = status.evaluate([], {}, None, None, RULES, None, NOW)
    root = ET.fromstring(plot.heatmap_svg(st))
    assert "no rows stored yet" in " ".join(t.text for t in root.iter(f"{SVG}text"))


# --- the metrics file -------------------------------------------------------------------------

def test_metrics_carry_the_newest_row_age_per_participant_and_metric():
    now = 1_704_700_800.0
    limits = {"success_max_age": 93_600.0, "newest_row_max_age": 172_800.0}
    text = report.metrics_text(report.run_gauges(
        None, 1.0, now, None, limits, {(7, "hr"): now - 3_600, (12, "spo2"): now - 90_000}))
    assert 'wearables_ingest_newest_row_age_seconds{participant="7",metric="hr"} 3600\n' \
        in text
    assert 'wearables_ingest_newest_row_age_seconds{participant="12",metric="spo2"} 90000\n' \
        in text
    assert "newest_row_age_seconds{" not in report.metrics_text(
        report.run_gauges(None, 1.0, now, None, limits))
