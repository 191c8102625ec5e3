-- The SQL of `jobq bench` (jobq.bench.store), in the format of queries.sql.
-- {schema} is the benchmark's own scratch schema, never an application's.

-- name: bench_reset
-- Empty the scratch schema's job tables between phases.
TRUNCATE {schema}.jobs, {schema}.job_attempts;

-- name: bench_drain_window
-- The drain in the database's clock: from the first claim to the last outcome.
SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds,
       count(*) AS jobs
FROM {schema}.jobs;

-- name: bench_self_check
-- Every job succeeded exactly once: one attempt counted, one attempt recorded.
SELECT
    (SELECT count(*) FROM {schema}.jobs) AS jobs,
    (SELECT count(*) FROM {schema}.jobs
      WHERE status = 'succeeded' AND attempts = 1 AND attempt_seq = 1) AS succeeded_once,
    (SELECT count(*) FROM {schema}.job_attempts) AS attempts,
    (SELECT count(*) FROM {schema}.job_attempts
      WHERE outcome = 'succeeded' AND seq = 1) AS attempts_succeeded;

-- name: bench_running_count
-- How many jobs are running now.
SELECT count(*) FROM {schema}.jobs WHERE status = 'running';

-- name: bench_unfinished_count
-- How many jobs have not reached a terminal state.
SELECT count(*) FROM {schema}.jobs
WHERE status NOT IN ('succeeded', 'failed_permanent', 'cancelled');

-- name: bench_drop_schema
-- Remove the scratch schema and everything in it.
DROP SCHEMA IF EXISTS {schema} CASCADE;
