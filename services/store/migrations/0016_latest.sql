-- Each datastream's newest reading, kept by the writer in the transaction
-- that stores it (only rows it actually inserted, and only when newer), so
-- that listings and live values read one row per datastream instead of
-- probing every chunk of `observations`, and so that one shared change feed
-- per API process can follow what changed.
--
-- `changed_xid` is the transaction that last changed the row. A reader of
-- changes keeps the `xmin` of its previous query's snapshot and asks for the
-- rows whose `changed_xid` is not below it: a transaction still running at
-- that query has an id at or above that `xmin`, so its rows are found by the
-- next query once it has committed, whatever the commit order.
CREATE TABLE datastream_latest (
    datastream_id bigint PRIMARY KEY REFERENCES datastreams (id) ON DELETE CASCADE,
    time timestamptz NOT NULL,
    value double precision NOT NULL,
    changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX datastream_latest_changed ON datastream_latest (changed_xid);

INSERT INTO datastream_latest (datastream_id, time, value)
SELECT d.id, newest.time, newest.value
  FROM datastreams d
  CROSS JOIN LATERAL (
      SELECT o.time, o.value FROM observations o WHERE o.datastream_id = d.id ORDER BY o.time DESC LIMIT 1
  ) newest;
