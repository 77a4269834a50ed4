-- Every door a reading comes in by (issue 15).

-- Where a dead letter came in: mqtt, http, sta, chirpstack, tts, airrohr
-- (NULL: a Kafka record that did not decode, whose door is unknown).
ALTER TABLE dead_letters ADD COLUMN door text;
UPDATE dead_letters SET door = 'mqtt';

-- A thing's identity outside Hoheit: a LoRaWAN DevEUI, a sensor.community
-- chip id (`esp8266-…`), a SenML base name (`urn:dev:ow:…`). Lower case,
-- unique within its organisation.
ALTER TABLE things ADD COLUMN external_id text
    CHECK (external_id = lower(external_id) AND length(external_id) BETWEEN 1 AND 128);
CREATE UNIQUE INDEX things_external_id ON things (org_id, external_id) WHERE external_id IS NOT NULL;

-- Supply contracts: the owner of a dataset lets a supplier's writer keys
-- deliver readings into it. The readings belong to the owner; the supplier
-- reads them only under a read grant.
CREATE TABLE supply_grants (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id      bigint NOT NULL REFERENCES datasets (id),
    supplier_org_id bigint NOT NULL REFERENCES organisations (id),
    contract_ref    text NOT NULL CHECK (length(contract_ref) BETWEEN 1 AND 200),
    -- NULL: every thing of the dataset.
    things          bigint[],
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz NOT NULL CHECK (valid_until > valid_from),
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX supply_grants_supplier ON supply_grants (supplier_org_id, dataset_id);
CREATE INDEX supply_grants_dataset ON supply_grants (dataset_id);

-- Publishers: device and gateway service accounts that write readings and
-- read nothing but open data.
ALTER TABLE principals DROP CONSTRAINT principals_role_check;
ALTER TABLE principals ADD CONSTRAINT principals_role_check
    CHECK (role IN ('admin', 'data_owner', 'reader', 'publisher'));
