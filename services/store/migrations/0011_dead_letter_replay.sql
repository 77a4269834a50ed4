-- Dead-letter replay: a dead letter sent through the checks again keeps its
-- row (no new dead letter for readings that still fail) and records when it
-- was last replayed, with what result and, while it still fails, the code.
ALTER TABLE dead_letters
    ADD COLUMN replayed_at        timestamptz,
    ADD COLUMN replay_result      text CHECK (replay_result IN ('stored', 'partial', 'rejected')),
    ADD COLUMN replay_reason_code text,
    ADD COLUMN replay_count       integer NOT NULL DEFAULT 0,
    ADD CHECK ((replayed_at IS NULL) = (replay_result IS NULL));
