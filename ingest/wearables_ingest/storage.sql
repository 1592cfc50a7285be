-- Storage on the full TimescaleDB (its license, `SHOW timescaledb.license`, says
-- timescale): compression and the down-sampled views as continuous aggregates.
-- Run after schema.sql by the loader (storage.py) and by db/init/10-wearables.sh,
-- only on such a server; on an Apache-only one, storage-apache.sql instead.
-- Every statement may run again harmlessly; what exists is kept, a compression
-- policy with another age is replaced. The age comes from the setting
-- wearables.compress_after (an interval; the callers set it from
-- COMPRESS_AFTER_DAYS), 7 days when unset.

-- Compression: one segment per participant and metric, in time order within it,
-- so a chunk's day of one metric packs into a few column arrays.
DO $$
BEGIN
  IF NOT (SELECT compression_enabled FROM timescaledb_information.hypertables
          WHERE hypertable_name = 'raw_data' AND hypertable_schema = current_schema()) THEN
    ALTER TABLE raw_data SET (timescaledb.compress,
                              timescaledb.compress_segmentby = 'participant, metric',
                              timescaledb.compress_orderby = 'ts');
  END IF;
END $$;

-- The policy: a job inside the database compresses chunks older than the age. Its
-- first run is a day after it is added, so a first load is not compressed under it.
DO $$
DECLARE
  age interval := coalesce(nullif(current_setting('wearables.compress_after', true), ''),
                           '7 days')::interval;
  job record;
BEGIN
  SELECT j.job_id, (j.config->>'compress_after')::interval AS after INTO job
  FROM timescaledb_information.jobs j
  WHERE j.proc_name = 'policy_compression' AND j.hypertable_name = 'raw_data'
    AND j.hypertable_schema = current_schema();
  IF FOUND AND job.after IS DISTINCT FROM age THEN
    PERFORM remove_compression_policy('raw_data');
  END IF;
  IF NOT FOUND OR job.after IS DISTINCT FROM age THEN
    PERFORM add_compression_policy('raw_data', compress_after => age,
                                   schedule_interval => INTERVAL '1 day',
                                   initial_start => now() + INTERVAL '1 day');
  END IF;
END $$;

-- Down-sampled views: rows per minute, hour and day, with the mean, min and max of
-- the values (NULL values count as samples, not in the mean). Each is a continuous
-- aggregate straight on raw_data (not one on another: a mean of means would drift
-- where values are NULL), with real-time aggregation: what the last refresh has
-- not materialized yet is computed from raw_data when read. Rows that arrive late,
-- compressed chunks included, mark their buckets for the next refresh; the policy
-- refreshes from the oldest data on (start_offset NULL), and a refresh only
-- recomputes the buckets so marked. A plain view of the same name (made on an
-- Apache-only server before the full one was installed) is replaced.
DO $$
DECLARE
  v record;
BEGIN
  FOR v IN SELECT * FROM (VALUES ('raw_data_1m', '1 minute'), ('raw_data_1h', '1 hour'),
                                 ('raw_data_1d', '1 day')) AS t (name, width) LOOP
    IF to_regclass(v.name) IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM timescaledb_information.continuous_aggregates
        WHERE view_name = v.name AND view_schema = current_schema()) THEN
      EXECUTE format('DROP VIEW %I', v.name);
    END IF;
    IF to_regclass(v.name) IS NULL THEN
      EXECUTE format(
        'CREATE MATERIALIZED VIEW %I '
        'WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS '
        'SELECT time_bucket(%L::interval, ts) AS bucket, participant, metric, '
        'count(*) AS samples, avg(value) AS mean, min(value) AS min, max(value) AS max '
        'FROM raw_data GROUP BY 1, 2, 3 WITH NO DATA', v.name, v.width);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs
                   WHERE proc_name = 'policy_refresh_continuous_aggregate'
                     AND hypertable_name = v.name AND hypertable_schema = current_schema()) THEN
      PERFORM add_continuous_aggregate_policy(v.name, start_offset => NULL,
                                              end_offset => INTERVAL '1 hour',
                                              schedule_interval => INTERVAL '1 hour',
                                              initial_start => now() + INTERVAL '1 hour');
    END IF;
  END LOOP;
END $$;
