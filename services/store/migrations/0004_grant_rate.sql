-- A grant's rate, shared by every key of the grantee and every API replica
-- (issue 13): one token bucket per grant. `tokens` is what was left at `at`;
-- a read refills it by the time passed (rate_per_minute / 60 per second, up
-- to a minute's worth) and takes one token if there is one. `granted` says
-- whether the last attempt got a token, so that one statement both decides
-- and reports (see `grant_rate.rs`).
--
-- UNLOGGED: a read under a grant then costs no WAL and no commit flush. After
-- a crash the table is empty, which gives every grant a full bucket: at most
-- one minute's worth of reads more, once.
CREATE UNLOGGED TABLE grant_rate (
    grant_id bigint PRIMARY KEY REFERENCES grants (id) ON DELETE CASCADE,
    tokens   double precision NOT NULL,
    at       timestamptz NOT NULL,
    granted  boolean NOT NULL
);
