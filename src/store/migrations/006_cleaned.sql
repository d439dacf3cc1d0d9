-- What was changed to make a record storable (src/spend/clean.ts), comma-separated: 'nul',
-- 'surrogate', 'long-value', 'cost' (negative, non-finite or absurd: stored as 0, unknown),
-- 'tokens', 'time'. NULL for a record stored as it came. No default and no rewrite.
ALTER TABLE spend_requests ADD COLUMN cleaned text;
