-- How far the backfill from LiteLLM's own spend logs (`/spend/logs/v2`, database mode) has read:
-- every request that started before done_until is in the ledger. One row per source (LiteLLM
-- instances sharing one database are one source).

CREATE TABLE spend_backfill (
  source      text        PRIMARY KEY,
  done_until  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
