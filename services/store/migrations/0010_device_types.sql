-- Device types: an organisation describes a kind of sensor once (its
-- properties with name, unit and plausible range); a thing of that type gets
-- one datastream per property. A type's properties are only ever added or
-- changed, and a property taken out of a type keeps its datastreams and data.

CREATE TABLE device_types (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES organisations (id),
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text CHECK (length(description) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, slug)
);

CREATE TABLE device_type_properties (
    device_type_id bigint NOT NULL REFERENCES device_types (id) ON DELETE CASCADE,
    property       text NOT NULL,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    unit           text NOT NULL,
    -- The plausible range; NULL: unbounded on that side.
    min            double precision,
    max            double precision,
    -- Order of the properties as the type lists them.
    position       integer NOT NULL,
    PRIMARY KEY (device_type_id, property),
    CHECK (min IS NULL OR max IS NULL OR min <= max)
);

ALTER TABLE things ADD COLUMN device_type_id bigint REFERENCES device_types (id);
CREATE INDEX things_device_type ON things (device_type_id) WHERE device_type_id IS NOT NULL;

-- A datastream's own plausible range; when both are NULL the range of its
-- thing's type property applies (no range at all: no check).
ALTER TABLE datastreams ADD COLUMN min double precision;
ALTER TABLE datastreams ADD COLUMN max double precision;
ALTER TABLE datastreams ADD CONSTRAINT datastreams_range CHECK (min IS NULL OR max IS NULL OR min <= max);

