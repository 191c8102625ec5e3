-- jobq schema, version 3: a failed attempt's traceback. {schema} is replaced
-- by the quoted schema name. Additive (SPEC §10).

-- The handler's trimmed traceback (jobq.handlers: the user's frames, at most
-- 8 KiB) when it raised; NULL for every other outcome and for attempts
-- recorded before this version.
ALTER TABLE {schema}.job_attempts ADD COLUMN traceback text;
