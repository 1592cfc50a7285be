-- Storage on an Apache-only TimescaleDB (`SHOW timescaledb.license` says apache),
-- which has neither compression nor continuous aggregates: the down-sampled views
-- as plain views, with the names and columns storage.sql gives them on the full
-- server, computed from raw_data whenever they are read. Run after schema.sql by
-- the loader (storage.py) and by db/init/10-wearables.sh. May run again harmlessly.
CREATE OR REPLACE VIEW raw_data_1m AS
SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket, participant, metric,
       count(*) AS samples, avg(value) AS mean, min(value) AS min, max(value) AS max
FROM raw_data GROUP BY 1, 2, 3;
CREATE OR REPLACE VIEW raw_data_1h AS
SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, participant, metric,
       count(*) AS samples, avg(value) AS mean, min(value) AS min, max(value) AS max
FROM raw_data GROUP BY 1, 2, 3;
CREATE OR REPLACE VIEW raw_data_1d AS
SELECT time_bucket(INTERVAL '1 day', ts) AS bucket, participant, metric,
       count(*) AS samples, avg(value) AS mean, min(value) AS min, max(value) AS max
FROM raw_data GROUP BY 1, 2, 3;
