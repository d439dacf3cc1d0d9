-- Keys (src/keys/): the audit trail of every rotation and key operation, and the rotations
-- themselves, so a rotation interrupted by a crash is finished (or rolled back) on the next start.
-- Neither table ever holds a key value: only fingerprints (a short SHA-256 prefix, src/keys/audit.ts).

-- One row per step of a rotation or key operation, append-only.
CREATE TABLE key_audit (
  id               bigserial   PRIMARY KEY,
  at               timestamptz NOT NULL DEFAULT now(),
  -- The rotation or operation the step belongs to (one id for all its steps).
  rotation_id      text        NOT NULL,
  -- Who asked: the API token's name, `cli` (the local CLI without a running service) or `schedule`.
  actor            text        NOT NULL,
  -- What kind of operation: credential.rotate, master.rotate, key.rotate, key.create, …
  action           text        NOT NULL,
  -- What it acts on: provider:openai, master-key, caller:research-agent, …
  subject          text        NOT NULL,
  -- The step: probe, store, swap, canary, grace, retire, rollback, alert, …
  step             text        NOT NULL,
  -- started, ok, failed or skipped.
  outcome          text        NOT NULL,
  old_fingerprint  text,
  new_fingerprint  text,
  -- What a person needs to know (an error message, masked), never a value.
  detail           text
);
CREATE INDEX key_audit_at ON key_audit (at, id);
CREATE INDEX key_audit_subject ON key_audit (subject, at);
CREATE INDEX key_audit_rotation ON key_audit (rotation_id);

-- One row per rotation, updated as it moves on: the state a restart resumes from.
CREATE TABLE key_rotations (
  id               text        PRIMARY KEY,
  -- credential (a provider's credential), master (LiteLLM's master key), virtual (a caller's key).
  kind             text        NOT NULL,
  subject          text        NOT NULL,
  actor            text        NOT NULL,
  -- started, live (swapped in, old value in grace), retired, failed, rolled-back.
  state            text        NOT NULL,
  old_fingerprint  text,
  new_fingerprint  text,
  started_at       timestamptz NOT NULL DEFAULT now(),
  -- Until when the old value still works; the retire step runs after it.
  grace_until      timestamptz,
  -- When the retire step (hook, delete) finished: it runs once, this marks it done.
  retired_at       timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  -- Kind-specific state (JSON), never a value.
  data             jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX key_rotations_subject ON key_rotations (subject, started_at);
CREATE INDEX key_rotations_open ON key_rotations (state) WHERE state IN ('started', 'live');
