-- Prompt and response content of a request attempt, kept only when the policies set
-- spend.keep_content. Keyed like spend_requests (one row per attempt that has content) and read
-- joined on that key; no foreign key, so inserting and pruning figures costs nothing when no
-- content is kept. Raw-row retention deletes these rows with their spend_requests rows.

CREATE TABLE spend_content (
  started_at  timestamptz NOT NULL,
  call_id     text        NOT NULL,
  status      text        NOT NULL,
  messages    jsonb,
  response    jsonb,
  PRIMARY KEY (started_at, call_id, status)
);
