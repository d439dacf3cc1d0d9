-- Spend ledger: one row per LLM call attempt that LiteLLM logged (success or failure), hourly
-- rollups maintained on insert, spool read positions, and budget alerts already sent.

CREATE TABLE spend_requests (
  call_id       text             NOT NULL,
  started_at    timestamptz      NOT NULL,
  status        text             NOT NULL CHECK (status IN ('success', 'failure')),
  ended_at      timestamptz      NOT NULL,
  goal          text,
  caller        text,
  conversation  text,
  profile       text,
  deployment    text,
  model         text,
  provider      text,
  tokens_in     integer          NOT NULL DEFAULT 0,
  tokens_out    integer          NOT NULL DEFAULT 0,
  cost_usd      double precision NOT NULL DEFAULT 0,
  latency_ms    real,
  ttft_ms       real,
  cache_hit     boolean          NOT NULL DEFAULT false,
  error_class   text,
  error_code    text,
  trace_id      text,
  end_user      text,
  key_alias     text,
  -- One attempt of one request (retries and fallbacks of a request share call_id). Time first, so
  -- the key also serves time-range reads (raw reports, retention) without a second index.
  PRIMARY KEY (started_at, call_id, status)
);

-- Empty string, not NULL, for a missing dimension: the conflict target needs equal keys.
CREATE TABLE spend_hourly (
  hour          timestamptz      NOT NULL,
  goal          text             NOT NULL,
  caller        text             NOT NULL,
  profile       text             NOT NULL,
  deployment    text             NOT NULL,
  model         text             NOT NULL,
  provider      text             NOT NULL,
  requests      bigint           NOT NULL,
  errors        bigint           NOT NULL,
  tokens_in     bigint           NOT NULL,
  tokens_out    bigint           NOT NULL,
  cost_usd      double precision NOT NULL,
  cache_hits    bigint           NOT NULL,
  -- Latency and time-to-first-token histograms (src/spend/histogram.ts buckets).
  latency_hist  integer[]        NOT NULL,
  ttft_hist     integer[]        NOT NULL,
  PRIMARY KEY (hour, goal, caller, profile, deployment, model, provider)
);

-- Histogram bucket of a duration in ms: 0 for < 1 ms (or NULL), else 1 + floor(log_1.25(ms)),
-- at most 63. Bucket i > 0 holds [1.25^(i-1), 1.25^i) ms. Mirrored in src/store/histogram.ts.
CREATE FUNCTION mc_bucket(ms double precision) RETURNS integer
  LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN ms IS NULL THEN NULL WHEN ms < 1 THEN 0
                ELSE least(63, floor(ln(ms) / ln(1.25))::integer + 1) END
  $$;

-- Aggregate step: count one value into a 64-bucket histogram (NULL values are not counted).
CREATE FUNCTION mc_hist_add(state integer[], bucket integer) RETURNS integer[]
  LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN bucket IS NULL THEN state
                ELSE state[1:bucket] || (state[bucket + 1] + 1) || state[bucket + 2:64] END
  $$;

CREATE AGGREGATE mc_hist(integer) (
  SFUNC = mc_hist_add, STYPE = integer[],
  INITCOND = '{0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0}'
);

CREATE FUNCTION mc_int_array_add(a integer[], b integer[]) RETURNS integer[]
  LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
    FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
  $$;

CREATE AGGREGATE mc_hist_sum(integer[]) (SFUNC = mc_int_array_add, STYPE = integer[], INITCOND = '{}');

CREATE TABLE spend_spool_offsets (
  file        text        PRIMARY KEY,
  byte_offset bigint      NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE spend_alerts (
  budget       text             NOT NULL,
  period_start timestamptz      NOT NULL,
  threshold    double precision NOT NULL,
  spend_usd    double precision NOT NULL,
  limit_usd    double precision NOT NULL,
  fired_at     timestamptz      NOT NULL DEFAULT now(),
  delivered    boolean          NOT NULL DEFAULT false,
  PRIMARY KEY (budget, period_start, threshold)
);
