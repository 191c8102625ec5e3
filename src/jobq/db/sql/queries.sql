-- jobq's runtime SQL. Each block starts with `-- name: <name>` and a one-line
-- description; jobq.db.queries loads them and exposes one function per name.
-- {schema} is replaced by the quoted schema name at load time.
-- JSON goes in and out as text, so a caller's own connection needs no codecs.

-- name: migration_lock
-- Serialise migrations across processes until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('jobq.migrate.' || $1::text));

-- name: migration_bootstrap
-- Create the schema and the table that records applied migrations.
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: migration_versions
-- The versions applied so far; an empty list when the schema does not exist.
SELECT coalesce(array_agg(version ORDER BY version), '{}'::int[]) AS versions
FROM {schema}.schema_migrations;

-- name: migration_record
-- Record one applied migration.
INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2);

-- name: schema_exists
-- Whether jobq's migration table exists in schema $1.
SELECT to_regclass(quote_ident($1::text) || '.schema_migrations') IS NOT NULL AS exists;

-- name: job_insert_many
-- Insert a batch of jobs; a row whose idempotency key already exists, or whose
-- unique key a job in its unique states holds, is skipped (no conflict target:
-- every unique index is an arbiter). $12 concurrency keys, $13 unique keys,
-- $14 each row's unique states joined by commas (unnest would flatten a text[][]),
-- $17 fairness keys.
-- A debounced row ($15 its debounce key, $16 its delay in seconds) replaces the
-- job that waits with its key and has never started (payload, run_at = now() +
-- delay, ...), else goes in; of a batch's rows with one debounce key the last
-- goes in (DO UPDATE may not touch a row twice). A debounced row whose
-- idempotency key is already held is left out: the caller answers it as a
-- replay, and so it is when the job it would replace holds its key.
-- One NOTIFY per queue with a job runnable now, whatever the batch size.
-- Each array is read through a sub-select so that no plan sees its length: the
-- plans made for given arguments then cost what the one made for any does, and
-- the plan cache keeps that one. Seeing the lengths, it planned the statement
-- again at every call (0.25-0.5 ms, as long as running it; half of a one-job
-- enqueue's time), since its generic plan, costed for 100 rows, looked dearer.
WITH input AS (
    SELECT *
    FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $3::text[]),
                (SELECT $4::text[]), (SELECT $5::text[]), (SELECT $6::smallint[]),
                (SELECT $7::integer[]), (SELECT $8::timestamptz[]), (SELECT $9::text[]),
                (SELECT $10::bytea[]), (SELECT $12::text[]), (SELECT $13::text[]),
                (SELECT $14::text[]), (SELECT $15::text[]), (SELECT $16::float8[]),
                (SELECT $17::text[])) WITH ORDINALITY
         AS i(id, queue, kind, payload, metadata, priority, max_attempts, run_at,
              idempotency_key, request_hash, concurrency_key, unique_key, unique_states,
              debounce_key, debounce_seconds, fairness_key, ord)
),
inserted AS (
    INSERT INTO {schema}.jobs AS j
        (id, queue, kind, payload, metadata, status, priority, max_attempts, run_at,
         idempotency_key, request_hash, concurrency_key, unique_key, unique_states,
         fairness_key)
    SELECT id, queue, kind, payload::jsonb, metadata::jsonb, 'queued', priority, max_attempts,
           coalesce(run_at, now()), idempotency_key, request_hash, concurrency_key, unique_key,
           string_to_array(unique_states, ','), fairness_key
    FROM input
    WHERE debounce_key IS NULL
    ON CONFLICT DO NOTHING
    RETURNING j.*
),
debounced AS (
    INSERT INTO {schema}.jobs AS j
        (id, queue, kind, payload, metadata, status, priority, max_attempts, run_at,
         idempotency_key, request_hash, concurrency_key, debounce_key, fairness_key)
    SELECT DISTINCT ON (i.debounce_key)
           i.id, i.queue, i.kind, i.payload::jsonb, i.metadata::jsonb, 'queued', i.priority,
           i.max_attempts, now() + make_interval(secs => i.debounce_seconds),
           i.idempotency_key, i.request_hash, i.concurrency_key, i.debounce_key, i.fairness_key
    FROM input AS i
    WHERE i.debounce_key IS NOT NULL
      AND (i.idempotency_key IS NULL OR NOT EXISTS (
               SELECT 1 FROM {schema}.jobs AS k WHERE k.idempotency_key = i.idempotency_key))
    ORDER BY i.debounce_key, i.ord DESC
    ON CONFLICT (debounce_key)
        WHERE debounce_key IS NOT NULL AND status = 'queued' AND attempt_seq = 0
    DO UPDATE SET
        queue = excluded.queue,
        payload = excluded.payload,
        metadata = excluded.metadata,
        priority = excluded.priority,
        max_attempts = excluded.max_attempts,
        run_at = excluded.run_at,
        concurrency_key = excluded.concurrency_key,
        fairness_key = excluded.fairness_key,
        updated_at = now()
    -- The job keeps the idempotency key it was made with. The same key again is
    -- a replay (a concurrent one that the NOT EXISTS above could not see yet).
    WHERE excluded.idempotency_key IS NULL
       OR j.idempotency_key IS DISTINCT FROM excluded.idempotency_key
    RETURNING j.*
),
written AS (
    SELECT * FROM inserted UNION ALL SELECT * FROM debounced
),
notified AS (
    SELECT pg_notify($11::text, queue)
    FROM (SELECT DISTINCT queue FROM written WHERE run_at <= now()) AS q
)
SELECT written.*, (SELECT count(*) FROM notified) AS notifications FROM written;

-- name: enqueue_savepoint
-- Start the all-or-nothing part of a batch enqueue inside a caller's transaction
-- (jobq.transactional; asyncpg's connection.transaction() does this for jobq.client).
SAVEPOINT jobq_enqueue;

-- name: enqueue_savepoint_release
-- The batch went in whole.
RELEASE SAVEPOINT jobq_enqueue;

-- name: enqueue_savepoint_rollback
-- The batch failed: undo its rows and leave the caller's transaction usable
-- (then enqueue_savepoint_release: one statement each, as every driver takes them).
ROLLBACK TO SAVEPOINT jobq_enqueue;

-- name: enqueue_begin
-- An autocommit connection outside a transaction: the batch gets its own.
BEGIN;

-- name: enqueue_commit
-- The end of that transaction.
COMMIT;

-- name: enqueue_rollback
-- The end of that transaction, when the batch failed.
ROLLBACK;

-- name: job_get_by_unique_keys
-- Per unique key, the job that holds it (in one of its unique states), else the
-- newest that had it: one that left its states since the insert skipped a duplicate.
SELECT DISTINCT ON (unique_key) *
FROM {schema}.jobs
WHERE unique_key = ANY($1::text[])
ORDER BY unique_key, (status = ANY (unique_states)) DESC, id DESC;

-- name: job_get_by_idempotency_keys
-- The jobs that hold these idempotency keys.
SELECT * FROM {schema}.jobs WHERE idempotency_key = ANY($1::text[]);

-- name: job_get
-- One job by id.
SELECT * FROM {schema}.jobs WHERE id = $1;

-- name: job_list_plan_per_call
-- For the rest of the transaction, plan each statement for its parameters: a
-- list's filters decide its index (a partial index on a state is usable only
-- when the plan sees the state), and the plan cached after five calls, made
-- for no filter in particular, read a big table backwards by id (1.2 s at 10M
-- jobs for a page of cancelled ones). Planning costs ~0.2 ms.
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: job_list
-- A page of jobs, newest first, after a keyset cursor, with optional filters.
-- $6 false leaves payload and metadata out ('{}'), the result and
-- progress_details (NULL); with them, $7 caps the bytes of a page: rows stop at
-- the first that starts past the cap (a page always has one), and `candidates` (rows before the cap)
-- tells whether more exist.
WITH candidate AS (
    SELECT id,
           CASE WHEN $6 THEN octet_length(payload::text) + octet_length(metadata::text)
                             + coalesce(octet_length(result::text), 0)
                             + coalesce(octet_length(progress_details::text), 0)
                ELSE 0 END AS body_bytes
    FROM {schema}.jobs
    WHERE ($1::uuid IS NULL OR id < $1)
      -- One state as an equality: planned for its value, `status = 'x'` lets a
      -- (status, id DESC) or (queue, status, id DESC) index give the rows in id
      -- order, which `status = ANY('{x}')` does not.
      AND ($2::text[] IS NULL OR cardinality($2::text[]) = 1 OR status = ANY($2))
      AND (cardinality($2::text[]) IS DISTINCT FROM 1 OR status = ($2::text[])[1])
      AND ($3::text IS NULL OR queue = $3)
      AND ($4::text IS NULL OR kind = $4)
    ORDER BY id DESC
    LIMIT $5
), page AS (
    SELECT id,
           sum(body_bytes) OVER (ORDER BY id DESC) - body_bytes AS bytes_before,
           count(*) OVER () AS candidates
    FROM candidate
)
SELECT j.id, j.queue, j.kind,
       CASE WHEN $6 THEN j.payload ELSE '{}'::jsonb END AS payload,
       CASE WHEN $6 THEN j.metadata ELSE '{}'::jsonb END AS metadata,
       j.status, j.priority, j.attempts, j.max_attempts, j.run_at, j.idempotency_key,
       j.cancel_requested, j.last_error, j.locked_by, j.lease_expires_at, j.retry_delay_ms,
       j.attempt_seq,
       j.created_at, j.updated_at, j.started_at, j.finished_at,
       CASE WHEN $6 THEN j.result END AS result, j.progress,
       CASE WHEN $6 THEN j.progress_details END AS progress_details, j.progress_at,
       page.candidates
FROM page JOIN {schema}.jobs j USING (id)
WHERE page.bytes_before < $7
ORDER BY j.id DESC;

-- name: job_finish_and_claim
-- A worker's round trip: persist the outcomes of finished attempts ($1-$8, $15-$19) and
-- claim up to $12 runnable jobs of kinds $14 for worker $10, in one statement
-- and one commit. Either half may be empty: a flush or the rescuer claims nothing
-- (limit 0), a claim with nothing to report passes empty arrays. Both halves
-- read one snapshot, in which the jobs being finished are still `running`, so
-- no job is finished and claimed by the same statement.
--
-- Finishing is fenced: a row is written only while it is still `running` under
-- the same worker and attempt, so a worker whose lease was lost cannot
-- overwrite a newer attempt. A failure or a release after a cancel request
-- ends `cancelled` (SPEC §1), decided here as well as in jobq.states because
-- the request can land after the worker last looked.
--
-- Claiming takes the highest priority, oldest run_at, lowest id first, and
-- skips rows other claimers hold, queues that are paused and kinds the worker
-- has no handler for ($14, the kinds its app registers; NULL: every kind, for
-- tools and tests): a job of a kind this worker does not know stays queued for
-- one that does, and spends no attempt.
--
-- $15 holds each attempt's traceback: NULL but for a handler that raised, so a
-- batch of successes sends an array of NULLs, not text. $16 is a snooze's delay
-- (NULL for every other outcome): the job goes back to `queued`, runnable that
-- many milliseconds from now. $17/$18 are the attempt's last progress when the
-- heartbeat had not written it yet (NULL: nothing new; the row keeps its own).
-- Each of $16-$19 may be NULL as a whole when no row has a value (unnest pads).
-- A claim clears the progress columns: they belong to the attempt that runs.
-- $19 holds each success's result as JSON text (NULL: none, and for every
-- other outcome); a success is never turned into `cancelled`, so the result
-- stays with it.
--
-- One row per finished job (the finished_* columns; the job's columns NULL),
-- then one per claimed job (the job's columns and claimed_at; finished_* NULL).
WITH input AS (
    SELECT *
    FROM unnest($1::uuid[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::bigint[], $8::integer[], $15::text[], $16::bigint[], $17::float8[],
                $18::text[], $19::text[])
         AS i(id, attempt_seq, worker_id, status, attempt_outcome, error, retry_delay_ms,
              attempts_delta, traceback, snooze_ms, progress, progress_details, result)
),
updated AS (
    -- The cancel rule reads j, the row as locked, not a snapshot: a cancel that
    -- commits while this statement waits for the row lock is still seen.
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN j.cancel_requested AND i.status <> 'succeeded' THEN 'cancelled'
                      ELSE i.status END,
        attempts = j.attempts + i.attempts_delta,
        last_error = coalesce(i.error, j.last_error),
        -- The retry delay counts from the database's clock, not the worker's. A
        -- retry without one (a rescued lease) keeps its run_at: its place in line.
        run_at = CASE WHEN i.status = 'retrying' AND i.retry_delay_ms IS NOT NULL
                      THEN now() + make_interval(secs => i.retry_delay_ms / 1000.0)
                      WHEN i.snooze_ms IS NOT NULL
                      THEN now() + make_interval(secs => i.snooze_ms / 1000.0)
                      ELSE j.run_at END,
        retry_delay_ms = coalesce(i.retry_delay_ms, j.retry_delay_ms),
        result = CASE WHEN i.status = 'succeeded' THEN i.result::jsonb ELSE j.result END,
        locked_by = NULL,
        lease_expires_at = NULL,
        finished_at = CASE WHEN i.status IN ('succeeded', 'failed_permanent', 'cancelled')
                                OR (j.cancel_requested AND i.status <> 'succeeded')
                           THEN now() END,
        progress = coalesce(i.progress, j.progress),
        progress_details = CASE WHEN i.progress IS NULL THEN j.progress_details
                                ELSE i.progress_details::jsonb END,
        progress_at = CASE WHEN i.progress IS NULL THEN j.progress_at ELSE now() END,
        updated_at = now()
    FROM input AS i
    WHERE j.id = i.id
      -- Rows found by primary key. `IS TRUE` keeps the planner off the partial
      -- jobs_running_idx, which it would otherwise scan whole whenever its
      -- statistics say few jobs run (measured: 45 ms with 5,000 running after an
      -- ANALYZE of an idle table, 0.15 ms by key).
      AND j.id = ANY ($1::uuid[])
      AND (j.status = 'running') IS TRUE
      AND j.locked_by = i.worker_id
      -- attempt_seq, not attempts: a snooze gives its attempt back, so the same
      -- `attempts` comes round again, while attempt_seq names one claim for good.
      AND j.attempt_seq = i.attempt_seq
    RETURNING j.id, j.queue, j.kind, j.status, j.run_at, j.attempt_seq, j.started_at,
              j.has_dependents, i.worker_id, i.attempt_outcome, i.error, i.traceback
),
resolved AS (
    -- Only jobs some other job waits for, and only once they end: for every
    -- other batch this CTE's input is empty and the function is not called
    -- (docs/DESIGN.md, "Jobs that wait for other jobs").
    SELECT {schema}.jobq_resolve_dependencies(array_agg(id), array_agg(status), $9::text) AS n
    FROM updated
    WHERE has_dependents AND status IN ('succeeded', 'failed_permanent', 'cancelled')
    HAVING count(*) > 0
),
history AS (
    INSERT INTO {schema}.job_attempts
        (job_id, seq, worker_id, started_at, finished_at, outcome, error, traceback)
    SELECT id, attempt_seq, worker_id, coalesce(started_at, now()), now(), attempt_outcome,
           error, traceback
    FROM updated
),
notified AS (
    -- A job released back to `queued` is runnable now (a snoozed one once its
    -- run_at comes, which the claimers' poll finds): wake the claimers.
    SELECT pg_notify($9::text, queue)
    FROM (SELECT DISTINCT queue FROM updated WHERE status = 'queued' AND run_at <= now()) AS q
),
finished AS (
    SELECT id AS finished_id, queue AS finished_queue, kind AS finished_kind,
           status AS finished_status,
           (SELECT count(*) FROM notified) + (SELECT count(*) FROM resolved) * 0
               AS notifications
    FROM updated
),
-- claim half: begin (job_finish_and_claim_limited replaces this part)
-- claim candidates: begin (job_finish_and_claim_fair replaces this part)
next AS (
    SELECT j.id
    FROM {schema}.jobs AS j
    WHERE j.status IN ('queued', 'retrying')
      -- Each priority scanned on its own, so that each scan stops at its first
      -- job not yet due (migration 0012 says why).
      AND j.priority = ANY ({schema}.jobs_runnable_priorities())
      AND j.run_at <= now()
      AND ($11::text[] IS NULL OR j.queue = ANY($11))
      AND ($14::text[] IS NULL OR j.kind = ANY($14))
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues AS q WHERE q.name = j.queue AND q.paused)
    ORDER BY j.priority DESC, j.run_at, j.id
    -- A sub-select hides the limit from the planner, in a custom plan as in the
    -- generic one: with equal costs PostgreSQL keeps the cached generic plan
    -- instead of planning this statement again at every call (~1 ms, more than
    -- running it).
    LIMIT (SELECT $12::integer)
    FOR UPDATE SKIP LOCKED
),
-- claim candidates: end
claimed AS (
    UPDATE {schema}.jobs AS j
    SET status = 'running',
        attempts = j.attempts + 1,
        attempt_seq = j.attempt_seq + 1,
        locked_by = $10,
        lease_expires_at = now() + make_interval(secs => $13::float8),
        started_at = now(),
        progress = NULL,
        progress_details = NULL,
        progress_at = NULL,
        updated_at = now()
    -- An array, not a join: a primary key lookup whatever the planner guesses
    -- of the limit (a join of the guess planned a hash of the whole table).
    WHERE j.id = ANY (ARRAY(SELECT id FROM next))
    RETURNING j.*, now() AS claimed_at
)
-- claim half: end
-- A full join on false is a union of two differently shaped row sets.
SELECT f.*, c.* FROM finished AS f FULL JOIN claimed AS c ON false;

-- name: job_claim_limited_half
-- The claim half of job_finish_and_claim_limited: job_finish_and_claim with the
-- part between its "claim half" markers replaced by this, for a worker that a
-- flow limit applies to (jobq.db.queries builds it, and the variant for a
-- worker whose queues have jobs with fairness keys waiting too, with
-- `p_fair => true`: the candidates in the fair order). job_flow_pick
-- (migration 0013; 0009 has the design and why it is a function) picks and
-- locks the jobs; this statement sets them running, with the start time the
-- pick took after its last lock and count. The jobs being finished ($1) are
-- excluded: a job released by this statement is not claimed by it. A row with
-- a NULL id is no job: its run_at is when a rate limit that held jobs back lets
-- the next one start, its updated_at when the claim said so.
picked AS MATERIALIZED (
    SELECT p.*
    FROM {schema}.job_flow_pick($11::text[], $14::text[], $12::integer, $1::uuid[],
                                p_fair => false) AS p
),
took AS (
    UPDATE {schema}.jobs AS j
    SET status = 'running',
        attempts = j.attempts + 1,
        attempt_seq = j.attempt_seq + 1,
        locked_by = $10,
        lease_expires_at = now() + make_interval(secs => $13::float8),
        started_at = (SELECT max(p.o_started) FROM picked AS p),
        progress = NULL,
        progress_details = NULL,
        progress_at = NULL,
        updated_at = now()
    WHERE j.id = ANY (ARRAY(SELECT p.o_id FROM picked AS p WHERE p.o_id IS NOT NULL))
    RETURNING j.*, now() AS claimed_at
),
claimed AS (
    SELECT t.* FROM took AS t
    UNION ALL
    SELECT m.*, now() FROM picked AS p,
        json_populate_record(NULL::{schema}.jobs,
                             json_build_object('run_at', p.o_opens, 'updated_at', p.o_said)) AS m
    WHERE p.o_id IS NULL
)

-- name: job_claim_fair_candidates
-- The candidates part of job_finish_and_claim_fair: job_finish_and_claim with
-- the part between its "claim candidates" markers replaced by this, for a
-- worker whose queues have jobs with fairness keys waiting (no flow limit).
-- Round-robin across fairness keys (migration 0011's job_fair_candidates), half
-- as many candidates again as slots, so rows another claimer holds are stepped
-- over; each is locked and re-checked in the fair order. The jobs being
-- finished ($1) are excluded, as in the limited claim.
next AS (
    SELECT j.id
    FROM {schema}.job_fair_candidates($11::text[], $14::text[],
                                      $12::integer * 3 / 2 + 4, $1::uuid[], NULL, NULL) AS c
    JOIN {schema}.jobs AS j ON j.id = c.c_id
    WHERE j.status IN ('queued', 'retrying')
      AND j.run_at <= now()
    ORDER BY c.c_ord
    LIMIT (SELECT $12::integer)
    FOR UPDATE OF j SKIP LOCKED
),

-- name: job_get_many
-- The jobs with these ids (those that exist), for the waiters' hub: one read
-- for every job a batch of notifications named.
SELECT * FROM {schema}.jobs WHERE id = ANY($1::uuid[]);

-- name: job_heartbeat
-- Renew the leases of the jobs $1 a worker holds, and write the progress they
-- reported since the last tick ($4-$6, one element per job: $5 NULL for none,
-- $5 and $6 NULL as a whole when no job has news: unnest pads them);
-- answers each job still held with its cancel flag (a job missing from the
-- answer was lost). Progress is fenced by the claim's attempt_seq ($4) as well as the
-- holder: a job rescued and claimed again by this same worker keeps the new
-- attempt's progress. Each job whose progress was written is announced on the
-- channel $7, its id the payload, for the job-event streams.
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $4::integer[], $5::float8[], $6::text[])
                  AS i(id, attempt_seq, progress, progress_details)
),
renewed AS (
    UPDATE {schema}.jobs AS j
    SET lease_expires_at = now() + make_interval(secs => $3::float8),
        progress = CASE WHEN i.progress IS NOT NULL AND i.attempt_seq = j.attempt_seq
                        THEN i.progress ELSE j.progress END,
        progress_details = CASE WHEN i.progress IS NOT NULL AND i.attempt_seq = j.attempt_seq
                                THEN i.progress_details::jsonb ELSE j.progress_details END,
        progress_at = CASE WHEN i.progress IS NOT NULL AND i.attempt_seq = j.attempt_seq
                           THEN now() ELSE j.progress_at END
    FROM input AS i
    WHERE j.id = i.id
      AND j.id = ANY($1::uuid[]) AND j.status = 'running' AND j.locked_by = $2
    RETURNING j.id, j.attempt_seq, j.cancel_requested,
              i.progress IS NOT NULL AND i.attempt_seq = j.attempt_seq AS progressed
),
notified AS (
    -- Only a watched job's progress (migration 0016).
    SELECT pg_notify($7::text, r.id::text) FROM renewed AS r
    WHERE r.progressed
      AND EXISTS (SELECT 1 FROM {schema}.job_watches AS w
                  WHERE w.job_id = r.id AND w.expires_at > now())
)
SELECT id, attempt_seq, cancel_requested, progressed,
       (SELECT count(*) FROM notified) AS notifications
FROM renewed;

-- name: job_expired_leases
-- Running jobs whose lease ran out, locked for the rescuer's transaction.
SELECT * FROM {schema}.jobs
WHERE status = 'running' AND lease_expires_at < now()
ORDER BY lease_expires_at
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: job_cancel
-- Cancel the job $1, or with $1 NULL every job matching the filter $2-$4:
-- queued/retrying become cancelled; running gets cancel_requested and its
-- worker is told through the control channel $5, once per worker. A job
-- already cancelled, or running with a cancel already requested, is left as it
-- is, so a repeated cancel writes nothing (the client answers with the job as
-- it stands). One row: the job as written when $1 named one (its columns NULL
-- when nothing was written or a filter was used), `count` and `notifications`.
--
-- One statement serves both so the rule is written once. The rows come from
-- `target`, a UNION ALL whose first branch is the primary-key lookup of $1 and
-- whose second scans by the filter only when $1 is NULL (a one-time filter), so
-- even a generic plan (asyncpg prepares statements; PostgreSQL may switch to a
-- generic plan after five runs) finds the single job by index: a plain
-- `($1 IS NULL OR id = $1)` predicate would plan a sequential scan. The UPDATE
-- reaches the rows through `id = ANY(ARRAY(target))`, not a join: the planner
-- guesses ten elements for an array it cannot see, so the scan of jobs is by
-- the primary key whatever the table's statistics. A join's plan follows the
-- filter branch's estimate instead, and with one queue and one kind (a common
-- deployment) it chose a hash join over a sequential scan of jobs for the
-- single job too.
-- Measured on 100,000 jobs (10 queues, 50 kinds; PostgreSQL 15) with
-- plan_cache_mode = force_generic_plan, PREPARE/EXECUTE, EXPLAIN ANALYZE in a
-- rolled-back transaction, median of five:
--   one job: Index Only Scan on jobs_pkey (id = $1) in the InitPlan, the filter
--     branch's Seq Scan never executed, then Bitmap Index Scan on jobs_pkey
--     (id = ANY) for the UPDATE: 0.2-0.3 ms (the two-statement form's plain
--     `id = $1`: 0.13-0.2 ms; a `($1 IS NULL OR id = $1)` predicate: Seq Scan,
--     17 ms; the join, with one queue and one kind: Hash Join, 40 ms).
--   a filter: Seq Scan by the filter in the InitPlan, the same primary-key scan
--     over the ids found: cancel by queue 93 ms, by kind 24 ms, by status 528 ms
--     (before: 100, 25, 531 ms, one Seq Scan UPDATE); retry by queue 59 ms
--     (before 44: the array also carries the queue's jobs the rule skips).
-- tests/db/test_cancel_retry.py checks the one-job plan under a generic plan.
-- The status filter is repeated in the UPDATE because `target` was read from
-- the statement's snapshot: a job claimed meanwhile is rechecked against its
-- new status, as when the filter stood in the UPDATE's own WHERE.
WITH target AS (
    SELECT id FROM {schema}.jobs WHERE id = $1::uuid
    UNION ALL
    SELECT id FROM {schema}.jobs
    WHERE $1::uuid IS NULL
      AND ($2::text[] IS NULL OR status = ANY($2))
      AND ($3::text IS NULL OR queue = $3)
      AND ($4::text IS NULL OR kind = $4)
),
updated AS (
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN j.status = 'running' THEN j.status ELSE 'cancelled' END,
        cancel_requested = j.cancel_requested OR j.status = 'running',
        finished_at = CASE WHEN j.status = 'running' THEN j.finished_at ELSE now() END,
        updated_at = now()
    WHERE j.id = ANY(ARRAY(SELECT id FROM target))
      AND j.status IN ('pending', 'queued', 'retrying', 'running')
      AND NOT (j.status = 'running' AND j.cancel_requested)
      AND ($2::text[] IS NULL OR j.status = ANY($2))
    RETURNING j.*
),
notified AS (
    SELECT pg_notify($5::text, w.locked_by)
    FROM (SELECT DISTINCT locked_by FROM updated WHERE status = 'running') AS w
),
resolved AS (
    -- The jobs waiting for the ones cancelled now (their policy applies; $6 is
    -- the enqueue channel for those it releases). A running job's dependents
    -- are resolved when its worker writes its end.
    SELECT {schema}.jobq_resolve_dependencies(array_agg(id), array_agg(status), $6::text) AS n
    FROM updated
    WHERE has_dependents AND status = 'cancelled'
    HAVING count(*) > 0
)
SELECT u.*, c.count, c.notifications
FROM (SELECT count(*) AS count,
             (SELECT count(*) FROM notified) + (SELECT count(*) FROM resolved) * 0
                 AS notifications
      FROM updated) AS c
LEFT JOIN updated AS u ON $1::uuid IS NOT NULL;

-- name: job_retry
-- Put the failed_permanent or cancelled job $1, or with $1 NULL every such job
-- matching the filter $2-$4, back in its queue (SPEC §1): a fresh start, every
-- trace of the last run cleared; one NOTIFY per queue on $5. One row, as
-- job_cancel's: the job as written when $1 named one, `count`, `notifications`.
-- The rows come from `target` as in job_cancel, for the same reason: an index
-- lookup for the single job even under a generic plan.
WITH target AS (
    SELECT id FROM {schema}.jobs WHERE id = $1::uuid
    UNION ALL
    SELECT id FROM {schema}.jobs
    WHERE $1::uuid IS NULL
      AND ($2::text[] IS NULL OR status = ANY($2))
      AND ($3::text IS NULL OR queue = $3)
      AND ($4::text IS NULL OR kind = $4)
),
updated AS (
    UPDATE {schema}.jobs AS j
    SET status = 'queued', attempts = 0, run_at = now(), cancel_requested = false,
        started_at = NULL, finished_at = NULL, locked_by = NULL, lease_expires_at = NULL,
        retry_delay_ms = NULL, progress = NULL, progress_details = NULL, progress_at = NULL,
        -- A job retried by hand gives up its unique and debounce keys: another
        -- job may hold them now, and coming back into the unique set (or, never
        -- started, into the debounce index) would collide with it.
        unique_key = NULL,
        debounce_key = NULL,
        updated_at = now()
    WHERE j.id = ANY(ARRAY(SELECT id FROM target))
      AND j.status IN ('failed_permanent', 'cancelled')
      AND ($2::text[] IS NULL OR j.status = ANY($2))
    RETURNING j.*
),
notified AS (
    SELECT pg_notify($5::text, q.queue) FROM (SELECT DISTINCT queue FROM updated) AS q
)
SELECT u.*, c.count, c.notifications
FROM (SELECT count(*) AS count, (SELECT count(*) FROM notified) AS notifications
      FROM updated) AS c
LEFT JOIN updated AS u ON $1::uuid IS NOT NULL;

-- name: job_delete
-- Delete a job in a terminal state together with its attempt history.
WITH deleted AS (
    DELETE FROM {schema}.jobs
    WHERE id = $1 AND status IN ('succeeded', 'failed_permanent', 'cancelled')
    RETURNING id
),
history AS (
    DELETE FROM {schema}.job_attempts AS a USING deleted AS d WHERE a.job_id = d.id
),
-- A finished job's edges are resolved (they were when it ended): drop them and
-- its workflow node with it.
edges AS (
    DELETE FROM {schema}.job_dependencies AS e USING deleted AS d
    WHERE e.dependency_id = d.id OR e.dependent_id = d.id
),
nodes AS (
    DELETE FROM {schema}.workflow_nodes AS n USING deleted AS d WHERE n.job_id = d.id
)
SELECT count(*) AS count FROM deleted;

-- name: job_prune
-- Delete up to $2 jobs finished more than $1 seconds ago, with their history.
WITH doomed AS (
    SELECT id FROM {schema}.jobs
    WHERE finished_at < now() - make_interval(secs => $1::float8)
      AND status IN ('succeeded', 'failed_permanent', 'cancelled')
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
deleted AS (
    DELETE FROM {schema}.jobs AS j USING doomed AS d WHERE j.id = d.id RETURNING j.id
),
history AS (
    DELETE FROM {schema}.job_attempts AS a USING deleted AS d WHERE a.job_id = d.id
),
-- A finished job's edges are resolved (they were when it ended): drop them and
-- its workflow node with it.
edges AS (
    DELETE FROM {schema}.job_dependencies AS e USING deleted AS d
    WHERE e.dependency_id = d.id OR e.dependent_id = d.id
),
nodes AS (
    DELETE FROM {schema}.workflow_nodes AS n USING deleted AS d WHERE n.job_id = d.id
)
SELECT count(*) AS count FROM deleted;

-- name: attempt_list
-- The finished attempts of one job, oldest first.
SELECT * FROM {schema}.job_attempts WHERE job_id = $1 ORDER BY seq;

-- name: queue_list
-- Every queue that has a job or a pause record (or only queue $1), with counts
-- per state, the age of its oldest job that could be claimed now, and how many
-- of those no live worker (one seen within $2 seconds) can claim: none
-- registers the job's kind for the queue. A worker row without kinds (an older
-- version) claims every kind.
WITH counts AS (
    -- The maintained counts (migration 0012): what is folded plus the deltas
    -- not folded yet, read in one snapshot, so exact.
    SELECT queue, status, sum(n)::bigint AS n
    FROM (SELECT queue, status, n FROM {schema}.job_counts
          UNION ALL
          SELECT queue, status, n FROM {schema}.job_count_deltas) AS c
    WHERE $1::text IS NULL OR queue = $1
    GROUP BY queue, status
    HAVING sum(n) <> 0
),
live AS (
    SELECT queues, kinds FROM {schema}.workers
    WHERE last_heartbeat_at > now() - make_interval(secs => $2::float8)
),
runnable AS (
    -- Grouped by kind first: the workers are matched once per (queue, kind),
    -- not once per job.
    SELECT queue, kind, count(*) AS n, min(run_at) AS run_at FROM {schema}.jobs
    WHERE status IN ('queued', 'retrying') AND run_at <= now()
      AND priority = ANY ({schema}.jobs_runnable_priorities())
      AND ($1::text IS NULL OR queue = $1)
    GROUP BY queue, kind
),
oldest AS (
    SELECT r.queue, min(r.run_at) AS run_at,
           sum(r.n) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM live AS w
               WHERE (w.queues IS NULL OR r.queue = ANY (w.queues))
                 AND (w.kinds IS NULL OR r.kind = ANY (w.kinds))
           )) AS unclaimable
    FROM runnable AS r
    GROUP BY r.queue
),
names AS (
    SELECT queue AS name FROM counts
    UNION
    SELECT name FROM {schema}.queues WHERE $1::text IS NULL OR name = $1
)
SELECT n.name,
       coalesce(q.paused, false) AS paused,
       coalesce((SELECT jsonb_object_agg(c.status, c.n) FROM counts AS c WHERE c.queue = n.name),
                '{}'::jsonb)::text AS counts,
       extract(epoch FROM now() - o.run_at)::float8 AS oldest_runnable_age_seconds,
       coalesce(o.unclaimable, 0)::bigint AS unclaimable
FROM names AS n
LEFT JOIN {schema}.queues AS q ON q.name = n.name
LEFT JOIN oldest AS o ON o.queue = n.name
ORDER BY n.name;

-- name: job_counts_fold
-- Fold the deltas that the jobs table's triggers appended into job_counts
-- (migration 0012); the number of deltas folded. Rows another fold has taken
-- are skipped (that fold moves them), so folds never wait on each other's
-- deltas, and counts are updated in one order, so two folds cannot deadlock.
WITH moved AS (
    DELETE FROM {schema}.job_count_deltas
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM {schema}.job_count_deltas FOR UPDATE SKIP LOCKED))
    RETURNING queue, status, n
),
folded AS (
    INSERT INTO {schema}.job_counts AS c (queue, status, n)
    SELECT queue, status, sum(n) FROM moved GROUP BY queue, status ORDER BY queue, status
    ON CONFLICT (queue, status) DO UPDATE SET n = c.n + excluded.n
)
SELECT count(*) AS count FROM moved;

-- name: queue_set_paused
-- Pause or resume a queue (a queue with no jobs may be paused); resuming
-- wakes the workers.
WITH upserted AS (
    INSERT INTO {schema}.queues (name, paused) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()
    RETURNING name, paused
),
notified AS (SELECT pg_notify($3::text, name) FROM upserted WHERE NOT paused)
SELECT name, paused, (SELECT count(*) FROM notified) AS notifications FROM upserted;

-- name: worker_register
-- Register (or re-register) a worker process, with the kinds it claims.
INSERT INTO {schema}.workers (id, host, pid, queues, concurrency, version, kinds)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE
SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, version = excluded.version,
    kinds = excluded.kinds, last_heartbeat_at = now();

-- name: worker_heartbeat
-- Mark a worker alive and record its in-flight count; false if its row is gone.
UPDATE {schema}.workers SET last_heartbeat_at = now(), in_flight = $2 WHERE id = $1
RETURNING id;

-- name: worker_delete
-- Remove a worker's row on a clean stop.
DELETE FROM {schema}.workers WHERE id = $1;

-- name: worker_list
-- Workers that heartbeat within the last $1 seconds.
SELECT * FROM {schema}.workers
WHERE last_heartbeat_at > now() - make_interval(secs => $1::float8)
ORDER BY started_at, id;

-- name: worker_prune
-- Remove rows of workers silent for more than $1 seconds.
DELETE FROM {schema}.workers
WHERE last_heartbeat_at < now() - make_interval(secs => $1::float8);

-- name: job_watch
-- Wait hub $2 watches jobs $1 for $3 seconds: the changes of their state are
-- notified from now on (migration 0016). Committed without waiting for the WAL
-- flush: the record is visible at once, and a crash ends every watch anyway.
INSERT INTO {schema}.job_watches AS w (job_id, hub, expires_at)
SELECT i.id, $2, now() + make_interval(secs => $3::float8)
FROM unnest($1::uuid[]) AS i(id),
     (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ON CONFLICT (job_id, hub) DO UPDATE SET expires_at = excluded.expires_at;

-- name: job_watch_refresh
-- Wait hub $1 still watches jobs $2: keep them $3 seconds more and drop its
-- other records; drop every other hub's expired record too (a hub that died).
-- Committed without waiting for the WAL flush, as job_watch is.
WITH kept AS (
    UPDATE {schema}.job_watches
    SET expires_at = now() + make_interval(secs => $3::float8)
    WHERE hub = $1 AND job_id = ANY ($2::uuid[])
),
dropped AS (
    DELETE FROM {schema}.job_watches
    WHERE (hub = $1 AND NOT job_id = ANY ($2::uuid[])) OR (hub <> $1 AND expires_at < now())
)
SELECT set_config('synchronous_commit', 'off', true);

-- name: listener_probe
-- NOTIFY channel $1 with payload $2: a worker's check that its LISTEN hears it.
SELECT pg_notify($1::text, $2::text);

-- name: jobq_sessions
-- The jobq processes connected to this server, but for the asking connection: their
-- connections are named jobq[PID] (jobq.db.pool.connect_kwargs); `jobq db stop` checks.
SELECT application_name, count(*)::int AS connections, min(backend_start) AS since
FROM pg_stat_activity
WHERE application_name LIKE 'jobq[%]' AND pid <> pg_backend_pid()
GROUP BY application_name
ORDER BY application_name;

-- name: connection_ping
-- One round trip, proving a long-lived session connection (LISTEN) is alive.
SELECT 1;

-- name: connection_begin_without_jit
-- Open the transaction a new pooled connection's type lookup runs in, with JIT
-- off for it alone (SET LOCAL: safe behind a transaction-mode pooler).
BEGIN; SET LOCAL jit = off;

-- name: connection_array_types
-- Name every array type jobq's statements pass, so that asyncpg looks them all
-- up now, in the pool's init, and never on a worker's first claim.
SELECT NULL::uuid[], NULL::integer[], NULL::bigint[], NULL::smallint[], NULL::float8[],
       NULL::timestamptz[], NULL::bytea[];

-- name: connection_commit
-- End the type lookup's transaction.
COMMIT;

-- name: leader_acquire
-- Take or renew the lease row `$1` for holder `$2`; answers the holder after.
INSERT INTO {schema}.leaders AS l (name, holder, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3::float8))
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING holder;

-- name: leader_release
-- Give up the lease row `$1` if `$2` holds it.
DELETE FROM {schema}.leaders WHERE name = $1 AND holder = $2;

-- name: stats_dead_tuples
-- Dead tuples per jobq table (how a Postgres queue fails: vacuum falling behind).
SELECT relname AS table, n_dead_tup AS dead FROM pg_stat_user_tables WHERE schemaname = $1;

-- name: stats_oldest_xact_age
-- Age in seconds of the oldest open transaction on the server (it holds back vacuum).
SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8 AS age
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid();

-- name: jobs_statistics_stale
-- Whether the jobs table changed so much since its last ANALYZE that the claim
-- may be planned from stale statistics (a burst after a quiet period).
SELECT coalesce(n_mod_since_analyze > greatest(1000, 0.2 * coalesce(c.reltuples, 0)), false)
       AS stale
FROM pg_stat_user_tables AS s
JOIN pg_class AS c ON c.oid = s.relid
WHERE s.schemaname = $1 AND s.relname = 'jobs';

-- name: jobs_analyze
-- Refresh the planner's statistics of the jobs table (samples a bounded number of rows).
ANALYZE {schema}.jobs;

-- name: clock_now
-- The database's clock: every process plans schedules by the same one.
SELECT now() AS now;

-- name: schedule_upsert_code
-- Write the schedules a worker's code defines ($1-$12, one array element per
-- schedule, sorted by name so concurrent starts lock rows in one order): the
-- definition belongs to the code and is overwritten; `paused` is the
-- operator's and kept. next_fire_at ($12, the first fire time after now) is
-- taken only by a new row or one whose timing changed, so a restart neither
-- skips nor repeats a fire time.
INSERT INTO {schema}.schedules AS s
    (name, kind, cron, every_seconds, timezone, queue, priority, max_attempts, payload, missed,
     max_backfill, source, next_fire_at, synced_at)
SELECT i.name, i.kind, i.cron, i.every_seconds, i.timezone, i.queue, i.priority, i.max_attempts,
       i.payload::jsonb, i.missed, i.max_backfill, 'code', i.next_fire_at, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[],
            $7::smallint[], $8::integer[], $9::text[], $10::text[], $11::integer[],
            $12::timestamptz[])
     AS i(name, kind, cron, every_seconds, timezone, queue, priority, max_attempts, payload,
          missed, max_backfill, next_fire_at)
ORDER BY i.name
ON CONFLICT (name) DO UPDATE
SET kind = excluded.kind, cron = excluded.cron, every_seconds = excluded.every_seconds,
    timezone = excluded.timezone, queue = excluded.queue, priority = excluded.priority,
    max_attempts = excluded.max_attempts, payload = excluded.payload, missed = excluded.missed,
    max_backfill = excluded.max_backfill, source = 'code', synced_at = now(),
    next_fire_at = CASE WHEN (s.cron, s.every_seconds, s.timezone)
                             IS DISTINCT FROM (excluded.cron, excluded.every_seconds,
                                               excluded.timezone)
                        THEN excluded.next_fire_at ELSE s.next_fire_at END,
    updated_at = CASE WHEN (s.kind, s.cron, s.every_seconds, s.timezone, s.queue, s.priority,
                            s.max_attempts, s.payload, s.missed, s.max_backfill, s.source)
                           IS DISTINCT FROM
                           (excluded.kind, excluded.cron, excluded.every_seconds,
                            excluded.timezone, excluded.queue, excluded.priority,
                            excluded.max_attempts, excluded.payload, excluded.missed,
                            excluded.max_backfill, 'code')
                      THEN now() ELSE s.updated_at END
RETURNING s.name;

-- name: schedule_list
-- Every schedule, by name (at most $1).
SELECT * FROM {schema}.schedules ORDER BY name LIMIT $1;

-- name: schedule_get
-- One schedule by name.
SELECT * FROM {schema}.schedules WHERE name = $1;

-- name: schedule_get_for_update
-- One schedule by name, locked until the caller's transaction ends.
SELECT * FROM {schema}.schedules WHERE name = $1 FOR UPDATE;

-- name: schedule_insert
-- Create a schedule from the API; no row when the name is taken.
INSERT INTO {schema}.schedules
    (name, kind, cron, every_seconds, timezone, queue, priority, max_attempts, payload, missed,
     max_backfill, source, paused, next_fire_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, 'api', $12, $13)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: schedule_write
-- Replace a schedule's definition, pause state and next fire time (the caller
-- holds the row: schedule_get_for_update).
UPDATE {schema}.schedules
SET kind = $2, cron = $3, every_seconds = $4, timezone = $5, queue = $6, priority = $7,
    max_attempts = $8, payload = $9::jsonb, missed = $10, max_backfill = $11, paused = $12,
    next_fire_at = $13, updated_at = now()
WHERE name = $1
RETURNING *;

-- name: schedule_delete
-- Delete a schedule and its fire records; its jobs stay.
WITH deleted AS (
    DELETE FROM {schema}.schedules WHERE name = $1 RETURNING name
),
fires AS (
    DELETE FROM {schema}.schedule_fires AS f USING deleted AS d WHERE f.schedule = d.name
)
SELECT count(*) AS count FROM deleted;

-- name: schedule_due_probe
-- The scheduler's tick when nothing is due: one index probe, no lock.
SELECT EXISTS (
    SELECT 1 FROM {schema}.schedules WHERE NOT paused AND next_fire_at <= now()
) AS due;

-- name: schedule_lock_due
-- Up to $1 due schedules, locked for this transaction; rows another scheduler
-- holds are skipped (it is firing them), and a row it advanced meanwhile is
-- re-read and no longer due. `db_now` is the clock the plan uses.
SELECT s.*, now() AS db_now
FROM {schema}.schedules AS s
WHERE NOT s.paused AND s.next_fire_at <= now()
ORDER BY s.next_fire_at
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: schedule_fire_insert_many
-- Record fire times ($1 schedule, $2 fire_at, $3 the job's id); a fire time
-- already recorded is skipped, so only the rows answered get a job.
INSERT INTO {schema}.schedule_fires (schedule, fire_at, job_id)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::uuid[])
ON CONFLICT (schedule, fire_at) DO NOTHING
RETURNING schedule, fire_at, job_id, enqueued_at;

-- name: schedule_advance_many
-- Store each fired schedule's next fire time, and its last fire and job when
-- it enqueued one ($3/$4 NULL: keep them).
UPDATE {schema}.schedules AS s
SET next_fire_at = i.next_fire_at,
    last_fire_at = coalesce(i.last_fire_at, s.last_fire_at),
    last_job_id = coalesce(i.last_job_id, s.last_job_id)
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::uuid[])
     AS i(name, next_fire_at, last_fire_at, last_job_id)
WHERE s.name = i.name;

-- name: schedule_fire_prune
-- Delete up to $2 fire records enqueued more than $1 seconds ago (by then the
-- schedule's next fire time is long past them; they only guarded their fire).
WITH doomed AS (
    SELECT schedule, fire_at FROM {schema}.schedule_fires
    WHERE enqueued_at < now() - make_interval(secs => $1::float8)
    ORDER BY enqueued_at
    LIMIT $2
)
DELETE FROM {schema}.schedule_fires AS f USING doomed AS d
WHERE f.schedule = d.schedule AND f.fire_at = d.fire_at;

-- name: stats_rollup_lock
-- The rollup's progress (migration 0007), locked until the transaction ends: a
-- second writer waits, then reads the progress the first one committed. With
-- the database's clock, by which minutes are cut.
SELECT counted_through, sampled_minute, now() AS db_now
FROM {schema}.stats_rollup WHERE name = 'minutes'
FOR UPDATE;

-- name: stats_count_minutes
-- Count the minutes from $1 to $2 (exclusive), per queue and over all queues
-- (queue ''), and upsert them: jobs by the final state they reached in the
-- minute (jobs_finished_idx), and failed attempts after which the job was to
-- run again (job_attempts_failed_idx; an attempt that ended its job shares its
-- finish time, the same statement's now(), and is counted by the job's state).
-- A count is set, never added to, so counting a minute twice writes the same row.
WITH ended AS (
    SELECT date_bin('1 minute', finished_at, 'epoch') AS minute, queue,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed_permanent') AS failed_permanent,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           0 AS retried
    FROM {schema}.jobs
    WHERE finished_at >= $1::timestamptz AND finished_at < $2::timestamptz
    GROUP BY 1, 2
),
retried AS (
    SELECT date_bin('1 minute', a.finished_at, 'epoch') AS minute, j.queue,
           0 AS succeeded, 0 AS failed_permanent, 0 AS cancelled, count(*) AS retried
    FROM {schema}.job_attempts AS a
    JOIN {schema}.jobs AS j ON j.id = a.job_id
    WHERE a.outcome IN ('failed', 'lease_expired')
      AND a.finished_at >= $1::timestamptz AND a.finished_at < $2::timestamptz
      AND j.finished_at IS DISTINCT FROM a.finished_at
    GROUP BY 1, 2
),
summed AS (
    SELECT minute, CASE WHEN grouping(queue) = 1 THEN '' ELSE queue END AS queue,
           sum(succeeded) AS succeeded, sum(failed_permanent) AS failed_permanent,
           sum(cancelled) AS cancelled, sum(retried) AS retried
    FROM (SELECT * FROM ended UNION ALL SELECT * FROM retried) AS both_kinds
    GROUP BY GROUPING SETS ((minute, queue), (minute))
)
INSERT INTO {schema}.stats_minutes AS s
    (queue, minute, succeeded, failed_permanent, cancelled, retried)
SELECT queue, minute, succeeded, failed_permanent, cancelled, retried FROM summed
ON CONFLICT (queue, minute) DO UPDATE
SET succeeded = excluded.succeeded, failed_permanent = excluded.failed_permanent,
    cancelled = excluded.cancelled, retried = excluded.retried;

-- name: stats_sample_depth
-- Write the depth of every queue, and over all queues (queue '', written even
-- when every queue is empty), into minute $1: jobs queued or retrying and due
-- (through jobs_runnable_idx's predicate) and jobs running (jobs_running_idx's).
-- Reads only unfinished rows, once a minute.
WITH unfinished AS (
    SELECT queue, 1 AS waiting, 0 AS running FROM {schema}.jobs
    WHERE status IN ('queued', 'retrying') AND run_at <= now()
      AND priority = ANY ({schema}.jobs_runnable_priorities())
    UNION ALL
    SELECT queue, 0, 1 FROM {schema}.jobs WHERE status = 'running'
),
depth AS (
    SELECT CASE WHEN grouping(queue) = 1 THEN '' ELSE queue END AS queue,
           coalesce(sum(waiting), 0) AS waiting, coalesce(sum(running), 0) AS running
    FROM unfinished
    GROUP BY GROUPING SETS ((queue), ())
)
INSERT INTO {schema}.stats_minutes AS s (queue, minute, waiting, running)
SELECT queue, $1::timestamptz, waiting, running FROM depth
ON CONFLICT (queue, minute) DO UPDATE SET waiting = excluded.waiting, running = excluded.running;

-- name: stats_rollup_advance
-- Record the rollup's progress ($1/$2 NULL: keep that one).
UPDATE {schema}.stats_rollup
SET counted_through = coalesce($1::timestamptz, counted_through),
    sampled_minute = coalesce($2::timestamptz, sampled_minute)
WHERE name = 'minutes';

-- name: stats_minutes_prune
-- Delete the rollup's minutes older than $1 seconds.
DELETE FROM {schema}.stats_minutes
WHERE minute < now() - make_interval(secs => $1::float8);

-- name: stats_progress
-- How far the rollup has counted, and the database's clock.
SELECT counted_through, now() AS db_now FROM {schema}.stats_rollup WHERE name = 'minutes';

-- name: stats_minutes_read
-- The minutes of queue $1 ('' for all queues) from $2 to $3 (exclusive). The
-- minutes are those of queue '', which every write touches: a minute sampled
-- for all queues with no row for $1 had none of its jobs waiting or running
-- (0, not NULL).
SELECT t.minute,
       coalesce(q.succeeded, 0) AS succeeded, coalesce(q.failed_permanent, 0) AS failed_permanent,
       coalesce(q.cancelled, 0) AS cancelled, coalesce(q.retried, 0) AS retried,
       coalesce(q.waiting, CASE WHEN t.waiting IS NOT NULL THEN 0 END) AS waiting,
       coalesce(q.running, CASE WHEN t.running IS NOT NULL THEN 0 END) AS running
FROM {schema}.stats_minutes AS t
LEFT JOIN {schema}.stats_minutes AS q ON q.queue = $1::text AND q.minute = t.minute
WHERE t.queue = '' AND t.minute >= $2::timestamptz AND t.minute < $3::timestamptz
ORDER BY t.minute;

-- name: job_insert_graph
-- Insert jobs that wait for others or are waited for (a `depends_on` enqueue, a
-- workflow, a batch): as job_insert_many, plus each row's status ($9:
-- pending, queued, or cancelled when a dependency had already failed), its
-- pending dependency count ($10), whether others depend on it ($11), the
-- reason of a cancel ($12), its concurrency key ($14) and fairness key ($15).
-- One NOTIFY per queue with a job runnable now.
WITH input AS (
    SELECT *
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[],
                $7::integer[], $8::timestamptz[], $9::text[], $10::integer[], $11::boolean[],
                $12::text[], $14::text[], $15::text[])
         AS i(id, queue, kind, payload, metadata, priority, max_attempts, run_at, status,
              pending_dependencies, has_dependents, last_error, concurrency_key, fairness_key)
),
inserted AS (
    INSERT INTO {schema}.jobs AS j
        (id, queue, kind, payload, metadata, status, priority, max_attempts, run_at,
         pending_dependencies, has_dependents, last_error, finished_at, concurrency_key,
         fairness_key)
    SELECT id, queue, kind, payload::jsonb, metadata::jsonb, status, priority, max_attempts,
           coalesce(run_at, now()), pending_dependencies, has_dependents, last_error,
           CASE WHEN status = 'cancelled' THEN now() END, concurrency_key, fairness_key
    FROM input
    RETURNING j.*
),
notified AS (
    SELECT pg_notify($13::text, queue)
    FROM (SELECT DISTINCT queue FROM inserted WHERE status = 'queued' AND run_at <= now()) AS q
)
SELECT inserted.*, (SELECT count(*) FROM notified) AS notifications FROM inserted;

-- name: job_mark_depended_on
-- Mark the existing jobs $1 as waited for, locking them until the enqueue's
-- transaction ends: a dependency that ends after this sees the flag and
-- resolves the new edges; one that ended before is answered here as ended.
UPDATE {schema}.jobs SET has_dependents = true
WHERE id = ANY($1::uuid[])
RETURNING id, status;

-- name: job_dependency_insert_many
-- Insert edges: dependency $1 -> dependent $2, policy $3, already resolved $4.
INSERT INTO {schema}.job_dependencies (dependency_id, dependent_id, on_failure, resolved)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::boolean[]);

-- name: job_resolve_dependencies
-- Resolve the dependents of jobs $1 that ended as $2 (see the function).
SELECT {schema}.jobq_resolve_dependencies($1::uuid[], $2::text[], $3::text) AS changed;

-- name: job_dependency_results
-- What the dependencies of job $1 ended with, and their workflow node names.
SELECT j.id, j.status, j.result, n.name
FROM {schema}.job_dependencies AS d
JOIN {schema}.jobs AS j ON j.id = d.dependency_id
LEFT JOIN {schema}.workflow_nodes AS n ON n.job_id = j.id
WHERE d.dependent_id = $1
ORDER BY j.id;

-- name: workflow_insert
-- Record workflow $1 (name $2) and its nodes: names $3, jobs $4.
WITH w AS (
    INSERT INTO {schema}.workflows (id, name, node_count)
    VALUES ($1, $2, cardinality($3::text[]))
    RETURNING id
)
INSERT INTO {schema}.workflow_nodes (workflow_id, name, job_id)
SELECT (SELECT id FROM w), n.name, n.job_id
FROM unnest($3::text[], $4::uuid[]) AS n(name, job_id);

-- name: workflow_prune
-- Delete up to $2 workflows made more than $1 seconds ago whose nodes are all
-- gone (job_prune deletes a node with its job), oldest first: all that is left
-- of one is its name and a count of nodes that no longer exist.
WITH doomed AS (
    SELECT w.id FROM {schema}.workflows AS w
    WHERE w.created_at < now() - make_interval(secs => $1::float8)
      AND NOT EXISTS (SELECT 1 FROM {schema}.workflow_nodes AS n WHERE n.workflow_id = w.id)
    ORDER BY w.created_at, w.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
deleted AS (
    DELETE FROM {schema}.workflows AS w USING doomed AS d WHERE w.id = d.id RETURNING w.id
)
SELECT count(*) AS count FROM deleted;

-- name: workflow_get
-- One workflow with its state counts; no row when there is none.
SELECT w.id, w.name, w.node_count, w.created_at,
       coalesce((SELECT jsonb_object_agg(c.status, c.n) FROM (
           SELECT j.status, count(*) AS n
           FROM {schema}.workflow_nodes AS n JOIN {schema}.jobs AS j ON j.id = n.job_id
           WHERE n.workflow_id = w.id GROUP BY j.status) AS c), '{}'::jsonb)::text AS counts
FROM {schema}.workflows AS w
WHERE w.id = $1;

-- name: workflow_nodes
-- The nodes of workflow $1: name, job, state, and the names it runs after.
-- Set-based (joins, one GROUP BY), not a sub-select per node: on tables filled
-- a moment before, the correlated form was planned as a scan per node (12 s
-- for a 10,000-node answer).
WITH nodes AS (
    SELECT name, job_id FROM {schema}.workflow_nodes WHERE workflow_id = $1
),
after AS (
    SELECT d.dependent_id, array_agg(n.name ORDER BY n.name) AS after
    FROM {schema}.job_dependencies AS d
    JOIN nodes AS n ON n.job_id = d.dependency_id
    WHERE d.dependent_id = ANY(ARRAY(SELECT job_id FROM nodes))
    GROUP BY d.dependent_id
)
SELECT n.name, j.id AS job_id, j.kind, j.queue, j.status, j.last_error,
       coalesce(a.after, '{}'::text[]) AS after
FROM nodes AS n
JOIN {schema}.jobs AS j ON j.id = n.job_id
LEFT JOIN after AS a ON a.dependent_id = n.job_id
ORDER BY n.name;

-- name: workflow_list
-- The newest workflows (at most $1), with their state counts.
SELECT w.id, w.name, w.node_count, w.created_at,
       coalesce((SELECT jsonb_object_agg(c.status, c.n) FROM (
           SELECT j.status, count(*) AS n
           FROM {schema}.workflow_nodes AS n JOIN {schema}.jobs AS j ON j.id = n.job_id
           WHERE n.workflow_id = w.id GROUP BY j.status) AS c), '{}'::jsonb)::text AS counts
FROM {schema}.workflows AS w
ORDER BY w.created_at DESC, w.id DESC
LIMIT $1;

-- name: workflow_of_job
-- The workflow job $1 belongs to and its node name; no row when none.
SELECT workflow_id, name FROM {schema}.workflow_nodes WHERE job_id = $1;

-- name: workflow_cancel
-- Cancel every job of workflow $1 not yet ended, as job_cancel does one job:
-- pending, queued and retrying become cancelled, running ones get
-- cancel_requested and their workers are told on $2 ($3: the enqueue channel).
WITH updated AS (
    UPDATE {schema}.jobs AS j
    SET status = CASE WHEN j.status = 'running' THEN j.status ELSE 'cancelled' END,
        cancel_requested = j.cancel_requested OR j.status = 'running',
        last_error = CASE WHEN j.status = 'running' THEN j.last_error
                          ELSE coalesce(j.last_error, 'workflow cancelled') END,
        finished_at = CASE WHEN j.status = 'running' THEN j.finished_at ELSE now() END,
        updated_at = now()
    WHERE j.id = ANY(ARRAY(SELECT job_id FROM {schema}.workflow_nodes WHERE workflow_id = $1))
      AND j.status IN ('pending', 'queued', 'retrying', 'running')
      AND NOT (j.status = 'running' AND j.cancel_requested)
    RETURNING j.id, j.status, j.locked_by, j.has_dependents
),
notified AS (
    SELECT pg_notify($2::text, w.locked_by)
    FROM (SELECT DISTINCT locked_by FROM updated WHERE status = 'running') AS w
),
resolved AS (
    SELECT {schema}.jobq_resolve_dependencies(array_agg(id), array_agg(status), $3::text) AS n
    FROM updated
    WHERE has_dependents AND status = 'cancelled'
    HAVING count(*) > 0
)
SELECT count(*) AS count,
       (SELECT count(*) FROM notified) + (SELECT count(*) FROM resolved) * 0 AS notifications
FROM updated;

-- name: flow_limit_upsert
-- Create or replace the flow limit $1.
INSERT INTO {schema}.flow_limits AS l (name, queue, key_pattern, max_running, rate, period_seconds)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE
SET queue = excluded.queue, key_pattern = excluded.key_pattern,
    max_running = excluded.max_running, rate = excluded.rate,
    period_seconds = excluded.period_seconds, updated_at = now()
RETURNING *;

-- name: flow_limit_delete
-- Delete the flow limit $1 and its rate windows.
WITH deleted AS (
    DELETE FROM {schema}.flow_limits WHERE name = $1 RETURNING name
),
windows AS (
    DELETE FROM {schema}.flow_rate_windows AS w USING deleted AS d WHERE w.limit_name = d.name
)
SELECT count(*) AS count FROM deleted;

-- name: flow_limit_list
-- Every flow limit with its use now: running jobs it counts (summed over keys
-- for a per-key limit), the busiest key's running count, starts within the
-- last period, runnable jobs it covers (queued or retrying, due), and of
-- those the ones held back now by its concurrency bound and by its rate: per
-- key ('' for a queue-wide limit, as the claim's buckets), the key's runnable
-- jobs beyond the room it has left. One grouped scan of the covered jobs per
-- limit; an estimate of this instant, as the claim's own hint is.
SELECT l.*,
       coalesce(u.running, 0) AS running,
       coalesce(u.busiest_key_running, 0) AS busiest_key_running,
       coalesce((SELECT count(*) FROM {schema}.flow_rate_windows AS w, unnest(w.starts) AS s
                 WHERE w.limit_name = l.name
                   AND s > now() - make_interval(secs => l.period_seconds)), 0) AS recent_starts,
       coalesce(u.waiting, 0) AS waiting,
       coalesce(u.held_by_concurrency, 0) AS held_by_concurrency,
       coalesce(u.held_by_rate, 0) AS held_by_rate
FROM {schema}.flow_limits AS l
CROSS JOIN LATERAL (
    SELECT sum(c.running) AS running,
           CASE WHEN l.key_pattern IS NULL THEN 0 ELSE max(c.running) END AS busiest_key_running,
           sum(c.waiting) AS waiting,
           -- greatest() skips NULLs: a bound that is not set holds nothing back.
           sum(CASE WHEN l.max_running IS NULL THEN 0
                    ELSE greatest(0, c.waiting - greatest(0, l.max_running - c.running)) END)
               AS held_by_concurrency,
           sum(CASE WHEN l.rate IS NULL THEN 0
                    ELSE greatest(0, c.waiting - greatest(0, l.rate - coalesce(
                        (SELECT count(*) FROM {schema}.flow_rate_windows AS w, unnest(w.starts) AS t
                         WHERE w.limit_name = l.name AND w.key = c.k
                           AND t > now() - make_interval(secs => l.period_seconds)), 0))) END)
               AS held_by_rate
    FROM (
        SELECT r.k, sum(r.running) AS running, sum(r.waiting) AS waiting
        FROM (
            SELECT CASE WHEN l.key_pattern IS NULL THEN '' ELSE j.concurrency_key END AS k,
                   1 AS running, 0 AS waiting
            FROM {schema}.jobs AS j
            WHERE j.status = 'running'
              AND (l.queue IS NULL OR j.queue = l.queue)
              AND (l.key_pattern IS NULL OR j.concurrency_key LIKE l.key_pattern)
            UNION ALL
            -- Runnable jobs only, read as the claim reads them (migration 0012):
            -- each priority's scan stops at its first job not yet due, so jobs
            -- scheduled for later cost nothing here.
            SELECT CASE WHEN l.key_pattern IS NULL THEN '' ELSE j.concurrency_key END,
                   0, 1
            FROM {schema}.jobs AS j
            WHERE j.status IN ('queued', 'retrying') AND j.run_at <= now()
              AND j.priority = ANY ({schema}.jobs_runnable_priorities())
              AND (l.queue IS NULL OR j.queue = l.queue)
              AND (l.key_pattern IS NULL OR j.concurrency_key LIKE l.key_pattern)
        ) AS r
        GROUP BY 1
    ) AS c
) AS u
ORDER BY l.name;

-- name: flow_limit_definitions
-- Every flow limit, without its use (cheap: the limits table alone).
SELECT * FROM {schema}.flow_limits ORDER BY name;

-- name: flow_claim_paths
-- Which claim a worker of queues $1 (NULL: every queue) takes: `limited` when a
-- flow limit applies to its queues (job_finish_and_claim_limited), `fair` when
-- jobs with a fairness key wait in them (job_finish_and_claim_fair; both: the
-- limited claim in the fair order). Two index probes.
SELECT EXISTS (
           SELECT 1 FROM {schema}.flow_limits
           WHERE queue IS NULL OR $1::text[] IS NULL OR queue = ANY ($1::text[])
       ) AS limited,
       EXISTS (
           SELECT 1 FROM {schema}.jobs
           WHERE status IN ('queued', 'retrying') AND fairness_key IS NOT NULL
             AND ($1::text[] IS NULL OR queue = ANY ($1::text[]))
       ) AS fair;
