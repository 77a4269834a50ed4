-- Alerts: rules on datastreams, each rule's state, the state changes (events)
-- and their notifications (deliveries, each attempt logged), and the alerts
-- service's Kafka offsets, which are committed in the same transaction as the
-- states and events they produced: a restart resumes exactly where it stopped.

CREATE TABLE alert_rules (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    datastream_id   bigint NOT NULL REFERENCES datastreams (id),
    -- Who created it and is notified; NULL: the operator.
    principal_id    bigint REFERENCES principals (id),
    org_id          bigint REFERENCES organisations (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind IN ('above', 'below', 'silent', 'rate')),
    -- above/below: the threshold; rate: the change per minute; silent: NULL.
    threshold       double precision,
    -- above/below/rate: how long the condition must hold; silent: how long without a reading.
    for_secs        integer NOT NULL DEFAULT 0 CHECK (for_secs >= 0),
    hysteresis      double precision NOT NULL DEFAULT 0 CHECK (hysteresis >= 0),
    -- 0: raw readings; otherwise the aggregate interval (averages of epoch-aligned buckets).
    resolution_secs integer NOT NULL DEFAULT 0 CHECK (resolution_secs >= 0),
    webhook_url     text,
    -- The HMAC-SHA256 key of the webhook's signature; shown once when created.
    webhook_secret  text,
    emails          text[] NOT NULL DEFAULT '{}',
    language        text NOT NULL DEFAULT 'de' CHECK (language IN ('de', 'en')),
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'silent') = (threshold IS NULL)),
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL))
);
CREATE INDEX alert_rules_datastream ON alert_rules (datastream_id);
CREATE INDEX alert_rules_principal ON alert_rules (principal_id);
CREATE INDEX alert_rules_org ON alert_rules (org_id);
CREATE INDEX alert_rules_updated ON alert_rules (updated_at);

-- One row per rule, written by the alerts service only.
CREATE TABLE alert_states (
    rule_id         bigint PRIMARY KEY REFERENCES alert_rules (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'pending', 'firing', 'resolved')),
    -- pending: since when the condition holds; firing/resolved: when that began.
    since           timestamptz,
    fired_at        timestamptz,
    fired_value     double precision,
    resolved_at     timestamptz,
    resolved_value  double precision,
    -- The newest value evaluated and its time (rate rules compare with it; silent rules count from it).
    last_value      double precision,
    last_reading_at timestamptz,
    -- Aggregate rules: the open bucket.
    bucket_start    timestamptz,
    bucket_sum      double precision,
    bucket_count    integer,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- A rule's state changes: each is notified exactly once per channel target.
CREATE TABLE alert_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id     bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('firing', 'resolved')),
    at          timestamptz NOT NULL,
    value       double precision,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_rule ON alert_events (rule_id, id DESC);

CREATE TABLE alert_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        bigint NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    channel         text NOT NULL CHECK (channel IN ('webhook', 'email')),
    -- The webhook's URL or the e-mail address.
    target          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (event_id, channel, target)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE alert_delivery_attempts (
    delivery_id bigint NOT NULL REFERENCES alert_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    http_status integer,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);

-- The next offset to read of each partition, committed with the states it produced.
CREATE TABLE alert_offsets (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
