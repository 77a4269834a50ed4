-- Read paths (issue 6): a covering unique index, and a 15-minute rollup.
--
-- The unique index on (datastream_id, time) also carries the value, so a
-- range of one datastream is read from the index alone (index-only scan)
-- instead of one heap page per reading: rows are stored in arrival order,
-- all datastreams interleaved. It still makes writes idempotent.
CREATE UNIQUE INDEX observations_datastream_time_value ON observations (datastream_id, time DESC) INCLUDE (value);
DROP INDEX observations_datastream_time;

-- 15-minute rollup of the observations: sum, count, min and max per
-- datastream and bucket (buckets aligned to the Unix epoch). The writer keeps
-- it in the same transaction as the readings it inserts (only the readings
-- actually inserted: a redelivery adds nothing), retention and erasure keep
-- it in step, and aggregates of 15 minutes or multiples of them over aligned
-- ranges read it instead of the raw rows (a month of one datastream: 2,880
-- rows instead of up to 260,000). The Apache edition of TimescaleDB has no
-- continuous aggregates; this is Hoheit's own.
CREATE TABLE observations_15m (
    datastream_id bigint NOT NULL,
    bucket        timestamptz NOT NULL,
    sum           double precision NOT NULL,
    count         bigint NOT NULL,
    min           double precision NOT NULL,
    max           double precision NOT NULL,
    PRIMARY KEY (datastream_id, bucket)
);
SELECT create_hypertable('observations_15m', by_range('bucket', INTERVAL '30 days'));

INSERT INTO observations_15m (datastream_id, bucket, sum, count, min, max)
SELECT datastream_id, time_bucket(INTERVAL '15 minutes', time, timestamptz 'epoch'),
       sum(value), count(*), min(value), max(value)
FROM observations
GROUP BY 1, 2;
