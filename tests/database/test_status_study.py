"""`wearables-ingest status` for a study: participants who joined on different days, and a
study of 1,000 participants, whose summary fits one screen and whose heat map renders.

The joined study goes through the loader; the 1,000 participants' coverage is written
straight into ingest_coverage (synth.study_coverage), which is all that status reads.
Those are slow (half a minute each); tests/unit/test_status_rules.py tries the same
rules at 1,000 participants without a database.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from helpers import execute, open_database, query, synth
from wearables_ingest import synth as synthetic
from wearables_ingest.database import ensure_schema

SVG = "{http://www.w3.org/2000/svg}"
METRICS = ["activity", "azm", "br", "hr", "hrv", "spo2"]
JOINED = {1: ("2024-01-01", 3), 2: ("2024-01-02", 2), 3: ("2024-01-03", 1)}  # first day, days


def status_json(run_ingest, *args: str) -> tuple[int, dict]:
    proc = run_ingest("status", "--json", *args)
    return proc.returncode, json.loads(proc.stdout)


def test_participants_who_joined_later_are_not_missing_before_their_first_day(
        tmp_path, run_ingest, database_url):
    data = tmp_path / "data"
    for participant, (start, days) in JOINED.items():
        synth(data / f"participant_00{participant}", "--start", start, "--days", str(days))
    loaded = run_ingest(DATA_DIR=str(data))
    assert loaded.returncode == 0, loaded.stderr

    code, report = status_json(run_ingest)  # 7 days ending 2024-01-03
    assert code == 0 and report["ok"] is True, report["verdict"]
    rated = {p: sorted({d["day"] for d in report["days"] if d["participant"] == p})
             for p in JOINED}
    assert rated == {1: ["2024-01-01", "2024-01-02", "2024-01-03"],
                     2: ["2024-01-02", "2024-01-03"], 3: ["2024-01-03"]}
    assert {d["status"] for d in report["days"]} == {"complete"}
    assert [(p["participant"], p["first_day"]) for p in report["participants"]] == [
        (1, "2024-01-01"), (2, "2024-01-02"), (3, "2024-01-03")]
    lines = run_ingest("status").stdout.splitlines()
    assert lines[-1].startswith("OK: all 36 days complete (3 participants) in "
                                "2023-12-28..2024-01-03 (UTC days)")  # the 7 days' period
    assert [line.split()[:2] for line in lines[3:6]] == [
        ["2024-01-01", "1/0/0"], ["2024-01-02", "2/0/0"], ["2024-01-03", "3/0/0"]]

    # A day without rows after a participant's first day is missing, as ever.
    execute(database_url, "DELETE FROM ingest_coverage WHERE participant = 2 "
                          "AND metric IN ('hrv', 'spo2') AND hour >= '2024-01-03'")
    code, report = status_json(run_ingest)
    assert code == 1
    assert [(d["participant"], d["metric"], d["day"]) for d in report["days"]
            if d["status"] != "complete"] == [(2, "hrv", "2024-01-03"), (2, "spo2", "2024-01-03")]
    assert report["verdict"].startswith("NOT OK: 2 of 36 days incomplete (1 of 3 participants)")


# --- 1,000 participants -----------------------------------------------------------------------

PARTICIPANTS, DAYS = 1000, 7


@pytest.fixture
def thousand(database_url) -> str:
    """A study of 1,000 participants over 7 days ending 2024-01-14, a quarter joining on each of
    the first four (synth.study_coverage: every 97th stopped two days before the end, every
    13th stored half of the last day's hr)."""
    db = open_database(database_url)
    try:
        ensure_schema(db)
    finally:
        db.close()
    statement, params = synthetic.study_coverage(PARTICIPANTS, DAYS, join_days=4)
    execute(database_url, statement, params)
    execute(database_url, "INSERT INTO ingest_runs (trigger, status, finished) "
                          "VALUES ('cron', 'ok', now())")
    return database_url


def rated_days(url: str, first: date, last: date) -> int:
    """Participant × metric × day from each participant's first day, counted in SQL."""
    return query(url, """
        SELECT count(*) FROM (SELECT participant, metric FROM ingest_coverage GROUP BY 1, 2) p
        JOIN (SELECT participant, min(hour)::date AS joined FROM ingest_coverage GROUP BY 1) j
          USING (participant)
        CROSS JOIN generate_series(%s::date, %s::date, '1 day') AS d
        WHERE d >= j.joined""", (first, last))[0][0]


@pytest.mark.slow
def test_status_of_1000_participants_fits_one_screen_and_json_keeps_every_row(thousand,
                                                                             run_ingest):
    proc = run_ingest("status")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) <= 80, proc.stdout
    assert lines[0] == ("1,000 participants, 2024-01-08..2024-01-14 (UTC days), each from its "
                        "first day.")
    # A quarter had joined on the first day, all by the fourth.
    assert lines[3].split() == ["2024-01-08", *["250/0/0"] * len(METRICS)]
    assert lines[6].split() == ["2024-01-11", *["1000/0/0"] * len(METRICS)]
    assert lines[9].split() == ["2024-01-14", "990/0/10", "990/0/10", "990/0/10", "914/76/10",
                                "990/0/10", "990/0/10"]
    stopped, half_hr = 10, 76  # every 97th; every 13th, less those of them who stopped
    assert lines[11].startswith(f"Needs attention: {stopped + half_hr} of 1,000 participants, "
                                "worst first (the first 20, --limit N; every row: --all)")
    assert [int(line.split()[0]) % 97 for line in lines[13:13 + stopped]] == [0] * stopped
    assert lines[13 + 20] == f"… and {stopped + half_hr - 20} more (--limit 0 lists them all)"
    assert lines[-1].startswith(f"NOT OK: {half_hr + 2 * stopped * len(METRICS)} of ")
    assert f"incomplete ({stopped + half_hr} of 1,000 participants)" in lines[-1]

    assert len(run_ingest("status", "--limit", "5").stdout.splitlines()) == len(lines) - 15
    everyone = run_ingest("status", "--limit", "0").stdout.splitlines()
    assert len(everyone) == len(lines) - 21 + stopped + half_hr

    code, report = status_json(run_ingest)
    total = rated_days(thousand, date(2024, 1, 8), date(2024, 1, 14))
    assert code == 1 and len(report["days"]) == total
    assert len(report["participants"]) == PARTICIPANTS
    assert report["incomplete"] == half_hr + 2 * stopped * len(METRICS)
    assert len(report["summary"]) == DAYS * len(METRICS)

    every = run_ingest("status", "--all").stdout.splitlines()
    incomplete = [line for line in every if line.endswith(("partial", "missing"))
                  and len(line.split()) == 7]
    assert len(incomplete) == report["incomplete"]


@pytest.mark.slow
def test_the_heat_map_of_1000_participants_stays_within_5000_px_and_2_mb(thousand, run_ingest,
                                                                        tmp_path):
    out = tmp_path / "coverage.svg"
    assert run_ingest("status", "--plot", str(out)).returncode == 1
    root = ET.parse(out).getroot()
    width, height = float(root.get("width")), float(root.get("height"))
    assert height <= 5000 and width <= 1300 and out.stat().st_size <= 2_000_000
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert ("1,000 participants: the 86 who need attention most, worst first, then "
            "\u201cothers\u201d: the other 914, each day their worst") in texts
    panel = texts[texts.index("activity  ·  1 row expected a day") + 2:]
    labels = panel[:panel.index("others")]
    assert len(labels) == 86 and {int(p) % 97 for p in labels[:10]} == {0}

    # Over 30 days (each participant joined within them) it still fits.
    assert run_ingest("status", "--days", "30", "--plot", str(out)).returncode == 1
    root = ET.parse(out).getroot()
    assert float(root.get("height")) <= 5000 and out.stat().st_size <= 2_000_000
    first = date(2024, 1, 14) - timedelta(days=29)
    assert f"{first}" in " ".join(t.text for t in root.iter(f"{SVG}text"))
