-- Administrative changes in the audit chain: who changed what (action,
-- object), for which organisation, and the object before and after.
--
-- A read record leaves these columns NULL and is hashed as before; an
-- administrative record sets all of `object_kind`, `object_id` and
-- `concerns_org_id`, and its hash covers them and the exact text of
-- `before` and `after` (type json keeps the text as written, so the hash can
-- be recomputed from the row). See hoheit_core::audit.
ALTER TABLE audit_log
    ADD COLUMN object_kind     text,
    ADD COLUMN object_id       bigint,
    -- The organisation whose object changed: its admins and data owners see the record.
    ADD COLUMN concerns_org_id bigint,
    ADD COLUMN before          json,
    ADD COLUMN after           json,
    ADD CONSTRAINT audit_log_admin_columns CHECK (
        (object_kind IS NULL AND object_id IS NULL AND concerns_org_id IS NULL AND before IS NULL AND after IS NULL)
        OR (object_kind IS NOT NULL AND object_id IS NOT NULL AND concerns_org_id IS NOT NULL));

CREATE INDEX audit_log_concerns_org ON audit_log (concerns_org_id, at) WHERE concerns_org_id IS NOT NULL;
