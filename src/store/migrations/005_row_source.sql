-- Where a row came from: 'payload' (a StandardLoggingPayload: the spool or generic_api; one row per
-- attempt) or 'spend_logs' (the backfill from LiteLLM's own spend logs; one row per request). A
-- payload for a request the backfill already took replaces the backfilled row, so a request is
-- counted once whichever source delivers first. The partial index holds backfilled rows only, so
-- that check costs the spool nothing when no backfill runs.

-- A constant default adds the column without rewriting the table (PostgreSQL 11+); a CHECK here
-- would scan every row under an exclusive lock, so the values are the ledger code's to keep.
ALTER TABLE spend_requests ADD COLUMN source text NOT NULL DEFAULT 'payload';

CREATE INDEX spend_requests_backfilled_calls ON spend_requests (call_id)
  WHERE source = 'spend_logs';
