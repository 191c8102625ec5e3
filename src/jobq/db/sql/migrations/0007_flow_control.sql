-- jobq schema, version 7: flow control. Unique jobs, per-key and per-queue
-- concurrency limits, rate limits. {schema} is replaced by the quoted schema
-- name. Additive (SPEC §10). See docs/DESIGN.md, "Flow control".

-- concurrency_key: the key a limit counts the job under (from the task's
-- definition or the enqueue call). unique_key: a digest of what makes the job
-- unique (kind, chosen payload fields, queue, period), held only while the job
-- is in one of its unique_states (always queued, retrying and running; the
-- finished states by choice). None is indexed unless set, so jobs that use
-- neither cost nothing more than three NULL columns.
ALTER TABLE {schema}.jobs
    ADD COLUMN concurrency_key text,
    ADD COLUMN unique_key      text,
    ADD COLUMN unique_states   text[];

-- Running jobs per key: the limited claim counts these after it has taken the
-- key's lock. Claim and finish change `status`, so keyed jobs lose HOT updates
-- at those two writes; unkeyed jobs never enter the index.
CREATE INDEX jobs_concurrency_running_idx ON {schema}.jobs (concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;

-- One job per unique key among the jobs in their unique states. The predicate
-- reads the row's own state list, so a job leaves the index by itself when its
-- status moves out of the set (a finished job that was unique only while
-- active frees the key) and no statement has to clear the key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON {schema}.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status = ANY (unique_states);

-- Limits, read by the limited claim only (a worker takes that path only while a
-- limit applies to one of its queues). A row limits the jobs of `queue` (NULL:
-- every queue); with `key_pattern` (a LIKE pattern on concurrency_key) each
-- matching key has its own limit, without it the queue as a whole has one.
CREATE TABLE {schema}.flow_limits (
    name            text        PRIMARY KEY,
    queue           text,
    key_pattern     text,
    max_running     integer     CHECK (max_running >= 1),
    rate            integer     CHECK (rate BETWEEN 1 AND 10000),
    period_seconds  float8      CHECK (period_seconds > 0 AND period_seconds <= 86400),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (max_running IS NOT NULL OR rate IS NOT NULL),
    CHECK ((rate IS NULL) = (period_seconds IS NULL))
);

-- A rate limit's sliding window: the start times within the last period, per
-- limit and key ('' for a queue-wide limit). At most `rate` entries are kept.
CREATE TABLE {schema}.flow_rate_windows (
    limit_name  text          NOT NULL,
    key         text          NOT NULL,
    starts      timestamptz[] NOT NULL,
    PRIMARY KEY (limit_name, key)
);

-- The limited claim. Called from job_finish_and_claim_limited (queries.sql) in
-- place of the plain claim half. Why a function: a limit is only safe if the
-- count of running jobs is read after the key is locked, in a snapshot newer
-- than every claim that held the lock before; a single statement reads one
-- snapshot taken before it waited. A plpgsql function takes a fresh snapshot
-- for each statement it runs (READ COMMITTED).
--
-- Locks: one transaction-level advisory lock per (limit, key) bucket, taken
-- with pg_try_: a bucket another claimer holds is skipped this round, like a
-- row under SKIP LOCKED, so claimers never wait on each other and cannot
-- deadlock. A claim that committed is visible before its locks are released,
-- so the next holder counts it.
CREATE FUNCTION {schema}.job_claim_limited(
    p_worker text, p_queues text[], p_kinds text[], p_limit integer, p_lease float8,
    p_exclude uuid[]
) RETURNS SETOF {schema}.jobs
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    lims {schema}.flow_limits[];
    lim {schema}.flow_limits;
    cand record;
    bucket text;
    buckets text[];
    room jsonb := '{}';    -- per bucket: starts it may still take (0: at its limit, or held)
    used jsonb := '{}';    -- per rate bucket: starts taken by this claim
    n integer;
    ok boolean;
    taken uuid[] := '{}';
    full_keys text[];
    full_queues text[];
    started timestamptz;
BEGIN
    IF p_limit IS NULL OR p_limit <= 0 THEN
        RETURN;
    END IF;
    lims := ARRAY(SELECT l FROM {schema}.flow_limits AS l
                  WHERE l.queue IS NULL OR p_queues IS NULL OR l.queue = ANY (p_queues));
    -- A hint, read without locks: keys and queues already at their limit. The
    -- scan below steps over their jobs in C rather than one by one here, so a
    -- full key's backlog at the head of the queue does not starve the others.
    full_keys := ARRAY(
        SELECT r.k FROM (
            SELECT j.concurrency_key AS k, j.queue AS q, count(*) AS n FROM {schema}.jobs AS j
            WHERE j.status = 'running' AND j.concurrency_key IS NOT NULL
            GROUP BY 1, 2) AS r
        WHERE EXISTS (SELECT 1 FROM unnest(lims) AS l
                      WHERE l.key_pattern IS NOT NULL AND l.max_running IS NOT NULL
                        AND (l.queue IS NULL OR l.queue = r.q)
                        AND r.k LIKE l.key_pattern AND r.n >= l.max_running));
    full_queues := ARRAY(
        SELECT l.queue FROM unnest(lims) AS l
        WHERE l.key_pattern IS NULL AND l.max_running IS NOT NULL AND l.queue IS NOT NULL
          AND (SELECT count(*) FROM {schema}.jobs AS j
               WHERE j.status = 'running' AND j.queue = l.queue) >= l.max_running);
    FOR cand IN
        SELECT j.id, j.queue, j.concurrency_key
        FROM {schema}.jobs AS j
        WHERE j.status IN ('queued', 'retrying')
          AND j.run_at <= now()
          AND (p_queues IS NULL OR j.queue = ANY (p_queues))
          AND (p_kinds IS NULL OR j.kind = ANY (p_kinds))
          AND NOT j.id = ANY (coalesce(p_exclude, '{}'))
          AND NOT j.queue = ANY (full_queues)
          AND (j.concurrency_key IS NULL OR NOT j.concurrency_key = ANY (full_keys))
          AND NOT EXISTS (SELECT 1 FROM {schema}.queues AS q WHERE q.name = j.queue AND q.paused)
        ORDER BY j.priority DESC, j.run_at, j.id
        -- Rate-limited jobs are not in the hint: bound the walk past them.
        LIMIT p_limit * 20 + 200
    LOOP
        ok := true;
        buckets := '{}';
        FOREACH lim IN ARRAY lims LOOP
            CONTINUE WHEN lim.queue IS NOT NULL AND lim.queue <> cand.queue;
            IF lim.key_pattern IS NOT NULL THEN
                CONTINUE WHEN cand.concurrency_key IS NULL
                           OR NOT cand.concurrency_key LIKE lim.key_pattern;
                bucket := lim.name || '|' || cand.concurrency_key;
            ELSE
                bucket := lim.name || '|';
            END IF;
            IF NOT room ? bucket THEN
                IF NOT pg_try_advisory_xact_lock(hashtext('jobq.flow'), hashtext(bucket)) THEN
                    n := 0;
                ELSE
                    -- Each statement here reads a fresh snapshot: it sees every
                    -- claim committed by an earlier holder of this lock.
                    n := 2147483647;
                    IF lim.max_running IS NOT NULL THEN
                        SELECT lim.max_running - count(*) INTO n FROM {schema}.jobs AS j
                        WHERE j.status = 'running'
                          AND (lim.queue IS NULL OR j.queue = lim.queue)
                          AND CASE WHEN lim.key_pattern IS NULL THEN true
                                   ELSE j.concurrency_key = cand.concurrency_key END;
                    END IF;
                    IF lim.rate IS NOT NULL THEN
                        -- Counted from now, recorded a little later (`started`):
                        -- the window counted is the wider one, so no period of
                        -- recorded starts ever holds more than `rate`.
                        n := least(n, lim.rate - coalesce((
                            SELECT count(*) FROM {schema}.flow_rate_windows AS w,
                                                 unnest(w.starts) AS s
                            WHERE w.limit_name = lim.name
                              AND w.key = substr(bucket, length(lim.name) + 2)
                              AND s > clock_timestamp()
                                      - make_interval(secs => lim.period_seconds)), 0));
                    END IF;
                END IF;
                room := room || jsonb_build_object(bucket, n);
            END IF;
            IF (room ->> bucket)::integer <= 0 THEN
                ok := false;
                EXIT;
            END IF;
            buckets := buckets || bucket;
        END LOOP;
        CONTINUE WHEN NOT ok;
        -- Still runnable, and not held by a plain claimer (fresh snapshot).
        PERFORM 1 FROM {schema}.jobs AS j
        WHERE j.id = cand.id AND j.status IN ('queued', 'retrying')
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        taken := taken || cand.id;
        FOREACH bucket IN ARRAY buckets LOOP
            room := room || jsonb_build_object(bucket, (room ->> bucket)::integer - 1);
            used := used || jsonb_build_object(bucket, coalesce((used ->> bucket)::integer, 0) + 1);
        END LOOP;
        EXIT WHEN cardinality(taken) >= p_limit;
    END LOOP;
    IF cardinality(taken) = 0 THEN
        RETURN;
    END IF;
    -- The start, after every lock and count: a job that ran before under one of
    -- these keys had committed its finish (finished_at <= its commit) before the
    -- lock was free, so the history of a key never shows more overlapping
    -- attempts than its limit.
    started := clock_timestamp();
    INSERT INTO {schema}.flow_rate_windows AS w (limit_name, key, starts)
    SELECT l.name, substr(u.key, length(l.name) + 2), array_fill(started, ARRAY[u.value::integer])
    FROM jsonb_each_text(used) AS u
    JOIN unnest(lims) AS l ON l.name = split_part(u.key, '|', 1)
    WHERE l.rate IS NOT NULL
    ON CONFLICT (limit_name, key) DO UPDATE
    SET starts = ARRAY(
        SELECT s FROM unnest(w.starts) AS s
        WHERE s > started - make_interval(secs => (SELECT l2.period_seconds
                                                   FROM {schema}.flow_limits AS l2
                                                   WHERE l2.name = w.limit_name))
    ) || excluded.starts;
    RETURN QUERY
    UPDATE {schema}.jobs AS j
    SET status = 'running',
        attempts = j.attempts + 1,
        attempt_seq = j.attempt_seq + 1,
        locked_by = p_worker,
        lease_expires_at = now() + make_interval(secs => p_lease),
        started_at = started,
        progress = NULL,
        progress_details = NULL,
        progress_at = NULL,
        updated_at = now()
    WHERE j.id = ANY (taken)
    RETURNING j.*;
END;
$fn$;
