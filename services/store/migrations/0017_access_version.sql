-- A counter of changes to what decides who may see and read what: the
-- datastreams and their datasets, organisations, grants, principals and API
-- keys. Every statement that writes one of these tables bumps it in its own
-- transaction, so a reader that sees the new number also sees the change.
-- The API keeps the access facts in memory and reloads them when the number
-- moved (it asks a few times a second): a revoked grant or key, a disabled
-- principal, a changed classification or a new datastream shows within a
-- second without every request reading the whole registry.
CREATE TABLE access_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  bigint NOT NULL
);
INSERT INTO access_version (only_row, version) VALUES (true, 0);

CREATE FUNCTION bump_access_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE access_version SET version = version + 1;
    RETURN NULL;
END
$$;

-- Per statement, not per row: an import of many datastreams is one bump.
CREATE TRIGGER datastreams_access_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON datastreams
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER datasets_access_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON datasets
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER organisations_access_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organisations
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER grants_access_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grants
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER principals_access_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON principals
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_version();
CREATE TRIGGER api_keys_access_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_access_version();
