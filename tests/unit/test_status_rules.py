"""status.py, its settings, its text and JSON (report.py), its heat map (plot.py): no database."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from wearables_ingest import plot, report, status
from wearables_ingest.errors import ConfigError
from wearables_ingest.settings import load, parse_expected_rows
from wearables_ingest.status import Expectations, Run, Status

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


# --- a study: first days, the summary, who needs attention ----------------------------------

def test_days_before_a_participants_first_row_are_not_rated():
    daily = full_study()
    for day in (date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)):  # 3 joins on the 4th
        del daily[(3, "hr", day)], daily[(3, "spo2", day)]
    del daily[(3, "spo2", date(2024, 1, 5))]  # and misses a night after
    # Without first days, every pair is rated on every day of the period.
    assert len(evaluate(daily).incomplete()) == 2 * 3 + 1
    starts = status.first_days({(3, "hr"): datetime(2024, 1, 4, 0, tzinfo=UTC),
                                (3, "spo2"): datetime(2024, 1, 4, 2, tzinfo=UTC),
                                (1, "hr"): datetime(2023, 6, 1, tzinfo=UTC)})
    assert starts == {3: date(2024, 1, 4), 1: date(2023, 6, 1)}
    st = status.evaluate({(p, m) for p, m, _ in daily}, daily, date(2024, 1, 1),
                         date(2024, 1, 7), RULES, ok_run(), NOW, starts=starts)
    assert [(d.participant, d.metric, d.day, d.status) for d in st.incomplete()] == [
        (3, "spo2", date(2024, 1, 5), "missing")]
    assert len(st.days) == 2 * 2 * 7 + 2 * 4  # participant 3: four days a metric
    assert not st.started(3, date(2024, 1, 3)) and st.started(3, date(2024, 1, 4))
    assert st.started(2, date(2024, 1, 1))  # no first day known: every day counts


def test_a_first_day_is_the_day_of_the_first_hour_in_the_time_zone():
    firsts = {(7, "hr"): datetime(2024, 1, 3, 23, tzinfo=UTC)}
    assert status.first_days(firsts, "UTC") == {7: date(2024, 1, 3)}
    assert status.first_days(firsts, "Europe/Berlin") == {7: date(2024, 1, 4)}


def joined_study() -> status.Status:
    """Participants 1-4, hr and spo2, 2024-01-01..07: 3 joins on the 4th, 4 on the 6th; 2 has
    half of the 5th's hr, 1 no spo2 on the 6th and the 7th."""
    daily, starts = {}, {1: date(2024, 1, 1), 2: date(2024, 1, 1), 3: date(2024, 1, 4),
                         4: date(2024, 1, 6)}
    for p, first in starts.items():
        for i in range((date(2024, 1, 7) - first).days + 1):
            day = first + timedelta(days=i)
            daily[(p, "hr", day)], daily[(p, "spo2", day)] = 86_400, 441
    daily[(2, "hr", date(2024, 1, 5))] = 43_200
    del daily[(1, "spo2", date(2024, 1, 6))], daily[(1, "spo2", date(2024, 1, 7))]
    return status.evaluate({(p, m) for p, m, _ in daily}, daily, date(2024, 1, 1),
                           date(2024, 1, 7), RULES, ok_run(), NOW, starts=starts)


def test_the_summary_counts_participants_per_metric_and_day_from_their_first_day():
    st = joined_study()
    counts = {(t.metric, t.first): (t.complete, t.partial, t.missing)
              for t in status.tallies(st, daily=7)}
    assert counts[("hr", date(2024, 1, 1))] == (2, 0, 0)  # 3 and 4 not yet in the study
    assert counts[("hr", date(2024, 1, 5))] == (2, 1, 0)
    assert counts[("spo2", date(2024, 1, 6))] == (3, 0, 1)
    assert counts[("spo2", date(2024, 1, 7))] == (3, 0, 1)
    assert len(counts) == 2 * 7


def test_the_summary_shows_the_newest_days_one_by_one_and_the_earlier_together():
    st = joined_study()
    assert status.spans(st, 2) == [(date(2024, 1, 1), date(2024, 1, 5)),
                                   (date(2024, 1, 6), date(2024, 1, 6)),
                                   (date(2024, 1, 7), date(2024, 1, 7))]
    assert status.spans(st, 30) == [(date(2024, 1, d), date(2024, 1, d)) for d in range(1, 8)]
    earlier = {t.metric: (t.complete, t.partial, t.missing)
               for t in status.tallies(st, daily=2) if t.first == date(2024, 1, 1)}
    assert earlier == {"hr": (2, 1, 0), "spo2": (3, 0, 0)}  # by each one's worst day
    lines = report.summary_lines(st, daily=2)
    assert lines[3].split() == ["2024-01-01..2024-01-05", "2/1/0", "3/0/0"]
    assert lines[-1] == "(2024-01-01..2024-01-05: each participant by its worst day)"


def test_participants_who_need_attention_come_worst_first():
    ranked = status.attention(joined_study())
    assert [(a.participant, a.missing, a.partial, a.needs_attention) for a in ranked] == [
        (1, 2, 0, True), (2, 0, 1, True), (3, 0, 0, False), (4, 0, 0, False)]
    assert ranked[1].share == pytest.approx(1 - 43_200 / (7 * 86_400))
    assert ranked[2].first_day == date(2024, 1, 4)
    lines = report.attention_lines(joined_study(), limit=1)
    assert lines[0] == ("Needs attention: 2 of 4 participants, worst first (the first 1, "
                        "--limit N; every row: --all)")
    assert lines[2].split() == ["1", "2024-01-01", "2", "0", "100%", "spo2", "01-06..01-07",
                                "missing"]
    assert lines[3:] == ["… and 1 more (--limit 0 lists them all)"]
    assert len(report.attention_lines(joined_study(), limit=0)) == 2 + 2


def many(participants: int = 1000, days: int = 7, every_day_wrong: bool = False) -> Status:
    """A study of ``participants``, hr and five more metrics, ``days`` days to 2024-01-07: a
    tenth joins each day of the first few; every 7th stores half of the last day's hr;
    every 50th nothing for its last two days. Or, ``every_day_wrong``: every day partial."""
    last = date(2024, 1, 7)
    first = last - timedelta(days=days - 1)
    metrics = {"hr": 86_400, "azm": 1_440, "activity": 1, "br": 1, "hrv": None, "spo2": None}
    daily, starts = {}, {}
    for p in range(1, participants + 1):
        starts[p] = min(last, first + timedelta(days=p % 10))
        for i in range((last - starts[p]).days + 1):
            day = starts[p] + timedelta(days=i)
            for metric, rows in metrics.items():
                if every_day_wrong:
                    daily[(p, metric, day)] = (rows or 2) // 2 - p % 3
                elif p % 50 == 0 and day > last - timedelta(days=2):
                    continue
                else:
                    daily[(p, metric, day)] = (rows or 400) // (2 if p % 7 == 0 and
                                                                 metric == "hr" and
                                                                 day == last else 1)
    rules = Expectations({m: r for m, r in metrics.items() if r is not None})
    return status.evaluate({(p, m) for p, m, _ in daily}, daily, first, last, rules, ok_run(),
                           NOW, starts=starts)


def test_the_summary_of_1000_participants_fits_one_screen():
    st = many()
    lines = report.status_lines(st)
    assert len(lines) <= 80
    assert lines[0] == ("1,000 participants, 2024-01-01..2024-01-07 (UTC days), each from its "
                        "first day.")
    assert lines[3].split() == ["2024-01-01", *["100/0/0"] * 6]  # only a tenth had joined
    needy = 142 + 20 - 2  # every 7th (hr partial), every 50th (two days gone), both: every 350th
    assert f"Needs attention: {needy:,} of 1,000 participants, worst first" in lines[11]
    assert lines[13].split()[:4] == ["50", "2024-01-01", "12", "0"]  # the longest in the study
    assert len(report.status_lines(st, limit=0)) == len(lines) - 20 - 1 + needy
    assert lines[-1].startswith("NOT OK: ")
    assert "(160 of 1,000 participants)" in lines[-1]
    every = report.status_lines(st, every_row=True)
    assert len(every) > len(st.incomplete())  # every incomplete day on a line of its own


def test_status_options_for_a_study_and_their_defaults():
    from wearables_ingest.cli import parse_status_args

    args = parse_status_args([])
    assert (args.all, args.limit, args.summary_days) == (False, 20, 7)
    args = parse_status_args(["--limit", "0", "--summary-days", "3"])
    assert (args.limit, args.summary_days) == (0, 3)
    assert parse_status_args(["--all"]).all is True
    for wrong in (["--all", "--limit", "5"], ["--limit", "-1"], ["--summary-days", "0"]):
        with pytest.raises(SystemExit) as caught:
            parse_status_args(wrong)
        assert caught.value.code == 2


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

def test_text_is_a_summary_then_who_needs_attention_then_the_run_and_a_verdict():
    daily = full_study()
    daily[(2, "hr", date(2024, 1, 5))] = 43_200
    del daily[(3, "spo2", date(2024, 1, 2))]
    lines = report.status_lines(evaluate(daily))
    assert lines[:3] == [
        "3 participants, 2024-01-01..2024-01-07 (UTC days), each from its first day.",
        "Participants complete/partial/missing per metric and day:",
        "day            hr   spo2"]
    assert lines[3:10] == [
        "2024-01-01  3/0/0  3/0/0", "2024-01-02  3/0/0  2/0/1", "2024-01-03  3/0/0  3/0/0",
        "2024-01-04  3/0/0  3/0/0", "2024-01-05  2/1/0  3/0/0", "2024-01-06  3/0/0  3/0/0",
        "2024-01-07  3/0/0  3/0/0"]
    assert lines[10] == ""
    assert lines[11] == "Needs attention: 2 of 3 participants, worst first (every row: --all)"
    assert lines[12].split() == ["participant", "first", "day", "missing", "partial", "stored",
                                 "days", "not", "complete"]
    assert [line.split() for line in lines[13:15]] == [
        ["3", "–", "1", "0", "100%", "spo2", "01-02", "missing"],
        ["2", "–", "0", "1", "93%", "hr", "01-05", "50%"]]
    assert lines[15:] == [
        "", "last run: #12 ok (cron), finished 2024-01-08T01:00:00+00:00, 8.0 h ago",
        "NOT OK: 2 of 42 days incomplete (2 of 3 participants) in 2024-01-01..2024-01-07 "
        "(UTC days): 1 partial, 1 missing; the last run (#12) succeeded 8.0 h ago"]


def test_all_lists_every_incomplete_day_then_one_line_per_pair():
    daily = full_study()
    daily[(2, "hr", date(2024, 1, 5))] = 43_200
    del daily[(3, "spo2", date(2024, 1, 2))]
    lines = report.status_lines(evaluate(daily), every_row=True)
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["participant", "metric", "day", "rows", "expected", "share",
                                "status"]
    assert [line.split() for line in table[1:3]] == [
        ["2", "hr", "2024-01-05", "43,200", "86,400", "50%", "partial"],
        ["3", "spo2", "2024-01-02", "0", "–", "–", "missing"]]
    assert table[3].split() == ["1", "hr", "2024-01-01..2024-01-07", "604,800", "604,800",
                                "100%", "complete", "(7", "days)"]
    assert len(table) == 1 + 2 + 6 + 3  # header, incomplete days, pairs, gap, run, verdict
    assert "Needs attention" not in "\n".join(lines)


def test_the_verdict_of_a_good_morning():
    lines = report.status_lines(evaluate(full_study()))
    assert lines[-1] == (
        "OK: all 42 days complete (3 participants) in 2024-01-01..2024-01-07 (UTC days); the "
        "last run (#12) succeeded 8.0 h ago")
    assert "Needs attention: none of 3 participants" in lines


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


def svg_size(text: str) -> tuple[float, float, int]:
    """The picture's width and height in px (checked against its viewBox), and its bytes."""
    root = ET.fromstring(text)
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {width:.0f} {height:.0f}"
    return width, height, len(text.encode())


def cell_titles(text: str) -> list[str]:
    return [r.find(f"{SVG}title").text for r in ET.fromstring(text).iter(f"{SVG}rect")
            if r.find(f"{SVG}title") is not None]


def test_heat_map_shows_days_before_a_participants_first_row_in_grey():
    st = joined_study()
    root = ET.fromstring(plot.heatmap_svg(st))
    cells = {r.find(f"{SVG}title").text: r.get("fill") for r in root.iter(f"{SVG}rect")
             if r.find(f"{SVG}title") is not None}
    assert len(cells) == 4 * 2 * 7  # every participant on every day, started or not
    assert cells["participant 4, hr, 2024-01-05: before its first row"] == plot.GREY
    assert cells["participant 1, spo2, 2024-01-06: 0 rows (no fixed count), missing"] == plot.RED
    assert "not started" in [t.text for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("days, every_day_wrong", [(7, False), (7, True), (30, True)])
def test_heat_map_of_1000_participants_stays_within_5000_px_and_2_mb(days, every_day_wrong):
    text = plot.heatmap_svg(many(1000, days, every_day_wrong))
    width, height, size = svg_size(text)
    assert height <= 5000 and width <= 1300 and size <= 2_000_000, (width, height, size)
    rows = [t.text for t in ET.fromstring(text).iter(f"{SVG}text")]
    assert "others" in rows


def test_heat_map_of_many_shows_the_worst_first_then_one_row_for_the_others():
    st = many(500)
    text = plot.heatmap_svg(st)
    texts = [t.text for t in ET.fromstring(text).iter(f"{SVG}text")]
    panel = texts[texts.index("activity  ·  1 row expected a day") + 2:]  # after "participant"
    labels = panel[:panel.index("others") + 1]
    worst = [a.participant for a in status.attention(st) if a.needs_attention]
    assert len(worst) == 80 and labels == [*map(str, worst), "others"]  # all 80 fit
    assert labels[0] == "50"  # two days missing, from the first day on
    assert ("500 participants: the 80 who need attention most, worst first, then "
            "\u201cothers\u201d: the other 420, each day their worst") in texts
    others = [t for t in cell_titles(text) if t.startswith("420 other participants, hr, ")]
    assert len(others) == 7
    assert others[-1] == ("420 other participants, hr, 2024-01-07: 420 complete, 0 partial, "
                          "0 missing, 0 not started or without hr")
    assert others[0].endswith("34 complete, 0 partial, 0 missing, 386 not started or without hr")


def test_heat_map_rows_stop_where_the_height_runs_out():
    st = many(1000, 7, every_day_wrong=True)  # everyone needs attention
    text = plot.heatmap_svg(st, max_height=1500)
    width, height, _ = svg_size(text)
    assert height <= 1500
    texts = [t.text for t in ET.fromstring(text).iter(f"{SVG}text")]
    shown = plot.fit(1500, 2) - 1
    assert f"1,000 participants: the {shown} who need attention most, worst first, then " \
           f"\u201cothers\u201d: the other {1000 - shown:,}, each day their worst" in texts


def test_heat_map_of_a_long_period_draws_a_run_of_like_days_as_one_cell():
    st = many(5, 365)  # 5 participants over a year: every one of them still has a row
    text = plot.heatmap_svg(st)
    width, height, size = svg_size(text)
    texts = [t.text for t in ET.fromstring(text).iter(f"{SVG}text")]
    assert "others" not in texts and {"1", "2", "3", "4", "5"} <= set(texts)
    titles = cell_titles(text)
    assert "participant 1, hr, 2023-01-09..2024-01-07: complete" in titles  # joined on day 2
    assert "participant 4, hr, 2023-01-09..2023-01-11: before its first row" in titles
    assert "participant 2, hr, 2023-01-09: before its first row" in titles  # a day alone
    assert size < 100_000 and height < 1500  # six panels one above the other


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
