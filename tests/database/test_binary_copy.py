"""The nightly way sends rows in COPY's binary format: what is stored must be exactly
what the server reads from the same text, whichever way a block went."""

from __future__ import annotations

import pytest

from helpers import open_database, query
from wearables_ingest.database import ensure_schema
from wearables_ingest.discovery import SourceFile
from wearables_ingest.loader import Options, load_file
from wearables_ingest.writer import DIRECT

# Plain lines the binary reading takes (fractions, both separators and UTC's forms, a
# leap day, a minus zero, 15 digits), then blocks it leaves to the row-by-row parse: an
# exponent, a NULL, a space.
EXACT = ["2024-02-29T23:59:59.999999Z,0.1", "2024-03-01 00:00:00+00:00,-0",
         "2024-03-01T00:00:00.5,123456789012345", "2024-03-01T00:00:01.000001Z,-.5",
         "2024-03-01T00:00:02Z,5.", "2024-03-01T00:00:03Z,0.000000000000001",
         "2024-03-01T00:00:04Z,007", "2024-03-01T00:00:05Z,-98765.4321"]
PARSED = ["2024-03-01T00:00:06Z,1e3", "2024-03-01T00:00:07Z,", "2024-03-01T00:00:08Z, 2.5"]


@pytest.fixture
def conn(database_url):
    db = open_database(database_url)
    ensure_schema(db)
    yield db
    db.close()


@pytest.mark.parametrize("lines", [EXACT, EXACT + PARSED], ids=["binary reading", "parsed"])
def test_rows_sent_in_binary_are_what_the_server_reads_from_their_text(tmp_path, conn,
                                                                       database_url, lines):
    path = tmp_path / "hr.csv"
    path.write_text("ts,value\n" + "".join(f"{line}\n" for line in lines))
    result = load_file(conn, SourceFile(1, "hr", path, "hr"), None, Options("copy"))
    assert result.strategy == DIRECT.name and result.inserted == len(lines)
    stored = query(database_url, "SELECT ts, value::text FROM raw_data ORDER BY ts")
    # The server's own reading of each line's text, as the CSV COPY would have read it.
    server = query(database_url,
                   "SELECT split_part(l, ',', 1)::timestamptz, "
                   "nullif(trim(split_part(l, ',', 2)), '')::float8::text "
                   "FROM unnest(%s::text[]) AS l ORDER BY 1", (lines,))
    assert stored == server
