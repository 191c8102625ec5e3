-- jobq schema, version 5: progress a running job reports, and snoozed attempts.
-- {schema} is replaced by the quoted schema name. Additive (SPEC §10).

-- The latest progress of the job's current (or last) attempt: a fraction 0..1,
-- small JSON details, and when the heartbeat (or the outcome) wrote it. No
-- index on any of them: the heartbeat writes them with the lease, and leaving
-- them out of every index keeps that write a HOT update. double precision, not
-- real: 0.4 reads back as 0.4.
ALTER TABLE {schema}.jobs
    ADD COLUMN progress         double precision,
    ADD COLUMN progress_details jsonb,
    ADD COLUMN progress_at      timestamptz;

-- An attempt may end `snoozed`: the handler returned jobq.Snooze. NOT VALID
-- skips a scan of the whole history under this migration's lock: every row
-- there passed the stricter check it replaces. New rows are checked.
ALTER TABLE {schema}.job_attempts DROP CONSTRAINT job_attempts_outcome_check;
ALTER TABLE {schema}.job_attempts ADD CONSTRAINT job_attempts_outcome_check CHECK (outcome IN
    ('succeeded', 'failed', 'cancelled', 'lease_expired', 'interrupted', 'snoozed')) NOT VALID;
