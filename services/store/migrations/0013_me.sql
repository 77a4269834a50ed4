-- What a caller sees of its own access (`GET /v1/me/grants`, `GET /v1/me/reads`): the use of a
-- grant is counted from the audit log by grant, and an organisation's own read log is listed by
-- organisation; without these indexes both would scan the whole log.
CREATE INDEX audit_log_grant_at ON audit_log (grant_id, at) WHERE grant_id IS NOT NULL;
CREATE INDEX audit_log_org_reads ON audit_log (org_id, at) WHERE org_id IS NOT NULL AND object_kind IS NULL;
