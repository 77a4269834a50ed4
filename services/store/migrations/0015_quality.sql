-- Data quality: how often a datastream is expected to report. NULL: learned
-- from its readings (the median gap between them over the last 7 days).
ALTER TABLE datastreams
    ADD COLUMN expected_interval_secs integer CHECK (expected_interval_secs > 0);
