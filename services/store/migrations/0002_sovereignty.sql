-- Data sovereignty: organisation kinds, datasets with classification and
-- license, principals with API keys, grants, and the tamper-evident audit log.

ALTER TABLE organisations
    ADD COLUMN kind text NOT NULL DEFAULT 'municipality'
        CHECK (kind IN ('municipality', 'department', 'municipal_company', 'third_party')),
    ADD COLUMN parent_id bigint REFERENCES organisations (id);

CREATE TABLE datasets (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug             text NOT NULL UNIQUE,
    owner_org_id     bigint NOT NULL REFERENCES organisations (id),
    title            text NOT NULL,
    description      text NOT NULL DEFAULT '',
    steward_contact  text NOT NULL,
    classification   text NOT NULL CHECK (classification IN ('open', 'internal', 'restricted', 'personal')),
    license          text NOT NULL,
    purpose          text NOT NULL,
    retention_days   integer NOT NULL CHECK (retention_days > 0),
    theme            text NOT NULL DEFAULT '',
    -- For personal data: aggregate buckets with fewer readings are withheld.
    min_bucket_count integer NOT NULL DEFAULT 5 CHECK (min_bucket_count > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Erased datasets keep their row (grants and audit records refer to it).
    erased_at        timestamptz
);

ALTER TABLE datastreams ADD COLUMN dataset_id bigint REFERENCES datasets (id);
CREATE INDEX datastreams_dataset ON datastreams (dataset_id);

CREATE TABLE principals (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       bigint NOT NULL REFERENCES organisations (id),
    name         text NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('person', 'service')),
    role         text NOT NULL CHECK (role IN ('admin', 'data_owner', 'reader')),
    oidc_subject text UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    disabled_at  timestamptz
);

-- Only hashes: the key itself is shown once. `lookup` is the public part of
-- the key (it finds the row), `secret_hash` the SHA-256 of the secret part,
-- `mqtt_hash` the broker's PBKDF2 form of the whole key (for MQTT sign-in).
CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal_id bigint NOT NULL REFERENCES principals (id),
    lookup       text NOT NULL UNIQUE,
    secret_hash  bytea NOT NULL,
    mqtt_hash    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

CREATE TABLE grants (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id        bigint NOT NULL REFERENCES datasets (id),
    grantee_org_id    bigint NOT NULL REFERENCES organisations (id),
    purpose           text NOT NULL,
    contract_ref      text NOT NULL,
    -- NULL: raw readings allowed; else only aggregates of at least this many minutes.
    min_interval_mins integer CHECK (min_interval_mins > 0),
    -- NULL: the whole history; else only the last N days.
    history_days      integer CHECK (history_days > 0),
    valid_from        timestamptz NOT NULL,
    valid_until       timestamptz NOT NULL,
    rate_per_minute   integer NOT NULL DEFAULT 60 CHECK (rate_per_minute > 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz,
    CHECK (valid_until > valid_from)
);
CREATE INDEX grants_grantee ON grants (grantee_org_id, dataset_id);

-- Append-only and hash-chained: hash = SHA-256(prev_hash || canonical record).
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL,
    request_id     text NOT NULL,
    principal_id   bigint,
    principal_name text NOT NULL,
    org_id         bigint,
    grant_id       bigint,
    dataset_id     bigint,
    datastream_id  bigint,
    action         text NOT NULL,
    range_from     timestamptz,
    range_to       timestamptz,
    resolution     text NOT NULL,
    rows_returned  bigint NOT NULL,
    decision       text NOT NULL CHECK (decision IN ('allow', 'deny')),
    reason         text NOT NULL,
    prev_hash      bytea NOT NULL,
    hash           bytea NOT NULL
);
CREATE INDEX audit_log_dataset_at ON audit_log (dataset_id, at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
