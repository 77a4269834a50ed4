-- The registry, the observation hypertable and the dead letters.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE organisations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       text NOT NULL UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE things (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     bigint NOT NULL REFERENCES organisations (id),
    slug       text NOT NULL,
    name       text NOT NULL,
    latitude   double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude  double precision CHECK (longitude BETWEEN -180 AND 180),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, slug)
);

CREATE TABLE datastreams (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thing_id   bigint NOT NULL REFERENCES things (id),
    property   text NOT NULL,
    name       text NOT NULL,
    unit       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (thing_id, property)
);

-- Narrow rows; the one unique index makes writes idempotent and serves every
-- read (range scans per datastream, newest first or last).
CREATE TABLE observations (
    datastream_id bigint NOT NULL,
    time          timestamptz NOT NULL,
    value         double precision NOT NULL
);
SELECT create_hypertable('observations', by_range('time', INTERVAL '1 day'), create_default_indexes => false);
CREATE UNIQUE INDEX observations_datastream_time ON observations (datastream_id, time DESC);

-- Rejected messages with their reasons. (source_topic, source_partition,
-- source_offset) is where the writer read the record: a redelivered record
-- is stored once.
CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at      timestamptz NOT NULL,
    org              text NOT NULL,
    mqtt_topic       text NOT NULL,
    reason_code      text NOT NULL,
    reason           text NOT NULL,
    rejections       jsonb NOT NULL,
    payload          bytea NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX dead_letters_org_received ON dead_letters (org, received_at);
