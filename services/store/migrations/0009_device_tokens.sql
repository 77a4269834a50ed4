-- A device's own secret for the doors that authenticate a device rather
-- than an API key (sensor.community's airrohr firmware sends it as the HTTP
-- basic auth password of its "send to own API"): only its SHA-256 is kept;
-- the token is shown once, when it is set.
ALTER TABLE things ADD COLUMN device_token_hash bytea
    CHECK (device_token_hash IS NULL OR length(device_token_hash) = 32);
