-- Connectors: LoRaWAN network servers (ChirpStack v4, The Things Stack v3)
-- that deliver an organisation's uplinks, by webhook (HTTP integration) or
-- through ingest subscribing to the network server's MQTT integration.

CREATE TABLE connectors (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        bigint NOT NULL REFERENCES organisations (id),
    slug          text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    kind          text NOT NULL CHECK (kind IN ('chirpstack', 'tts')),
    -- SHA-256 of the webhook secret; the secret itself is shown once.
    secret_hash   bytea NOT NULL CHECK (length(secret_hash) = 32),
    -- The network server's MQTT integration (all NULL: webhook only). The
    -- password is stored because ingest presents it to that broker; it is
    -- never logged or returned.
    mqtt_url      text CHECK (mqtt_url ~ '^mqtts?://'),
    mqtt_username text,
    mqtt_password text,
    -- ChirpStack: the application id; The Things Stack: `app@tenant`.
    application   text CHECK (length(application) BETWEEN 1 AND 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz,
    UNIQUE (org_id, slug),
    CHECK ((mqtt_url IS NULL) = (application IS NULL))
);
