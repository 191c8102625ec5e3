-- jobq schema, version 13: the limited claim, cheaper. {schema} is replaced by
-- the quoted schema name. Additive (SPEC §10). See docs/DESIGN.md, "Flow
-- control".
--
-- The same claim as migration 0011's (0009 has its design), in fewer and
-- cheaper statements. Measured before this (20,000 jobs over 100 keys, a limit
-- of 1 running per key, claims of 10): the function's statements executed in
-- ~0.85 ms, and PostgreSQL planned most of them again at every call (~0.9 ms
-- more), because plpgsql variables are parameters and their generic plans
-- looked dearer than the custom ones. Now:
-- - every statement runs a generic plan, planned once per session
--   (plan_cache_mode below); the candidate scan is written so that its generic
--   plan walks jobs_runnable_idx, as the plain claim's does;
-- - the running jobs of the buckets met are counted in one scan, not once per
--   bucket;
-- - the buckets are found and locked in one statement, the limits, the hints
--   and the priorities read in one;
-- - what only a rate limit needs (the starts per bucket, the room left after a
--   pass, when a full bucket opens) is computed only when a rate limit applies
--   or another pass will read it;
-- - the function picks the jobs and the claim statement updates them
--   (job_flow_pick): the claim's UPDATE is then one with the finish's, so the
--   statement triggers (counts, notifications) run once per round trip, not
--   twice, and the rows cross no function boundary.
-- The jobs a limited claim takes, locked FOR UPDATE by this transaction: one
-- row each (o_id) with the time the claim starts them (o_started), and when
-- slots are left unfilled because a rate limit held jobs back, one row with
-- o_id NULL: o_opens is when the earliest full rate bucket lets the next job
-- start (or a moment from now for a bucket another claimer held), o_said when
-- the claim said so (the wait is the difference, on the database's clock). The
-- caller sets the rows `running` in the same transaction.
CREATE FUNCTION {schema}.job_flow_pick(
    p_queues text[], p_kinds text[], p_limit integer, p_exclude uuid[], p_fair boolean
) RETURNS TABLE (o_id uuid, o_started timestamptz, o_opens timestamptz, o_said timestamptz)
LANGUAGE plpgsql VOLATILE ROWS 10
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    lims {schema}.flow_limits[];
    has_rate boolean;
    full_keys text[];
    full_queues text[];
    priorities smallint[];
    c_ids uuid[];
    c_queues text[];
    c_keys text[];
    p_ords integer[];
    p_buckets text[];
    held text[];
    k_buckets text[] := '{}';   -- every bucket met so far, and the room left in it
    k_rooms integer[] := '{}';  -- (0: at its limit, or held by another claimer)
    new_taken uuid[];
    taken uuid[] := '{}';
    taken_buckets text[] := '{}';  -- one entry per (claimed job, bucket): rate limits only
    started timestamptz;
    got text[] := '{}';         -- every bucket whose lock this claim holds
    opens timestamptz;
BEGIN
    IF p_limit IS NULL OR p_limit <= 0 THEN
        RETURN;
    END IF;
    -- The limits over the worker's queues; a hint, read without locks: keys and
    -- queues already at their limit, whose jobs the candidate scan steps over;
    -- the priorities that runnable jobs have (migration 0012 says why).
    WITH l AS MATERIALIZED (
        SELECT l FROM {schema}.flow_limits AS l
        WHERE l.queue IS NULL OR p_queues IS NULL OR l.queue = ANY (p_queues)
    )
    SELECT ARRAY(SELECT l.l FROM l),
           EXISTS (SELECT 1 FROM l WHERE (l.l).rate IS NOT NULL),
           ARRAY(
               SELECT r.k FROM (
                   SELECT j.concurrency_key AS k, j.queue AS q, count(*) AS n
                   FROM {schema}.jobs AS j
                   WHERE j.status = 'running' AND j.concurrency_key IS NOT NULL
                   GROUP BY 1, 2) AS r
               WHERE EXISTS (SELECT 1 FROM l
                             WHERE (l.l).key_pattern IS NOT NULL
                               AND (l.l).max_running IS NOT NULL
                               AND ((l.l).queue IS NULL OR (l.l).queue = r.q)
                               AND r.k LIKE (l.l).key_pattern AND r.n >= (l.l).max_running)),
           ARRAY(
               SELECT (l.l).queue FROM l
               WHERE (l.l).key_pattern IS NULL AND (l.l).max_running IS NOT NULL
                 AND (l.l).queue IS NOT NULL
                 AND (SELECT count(*) FROM {schema}.jobs AS j
                      WHERE j.status = 'running' AND j.queue = (l.l).queue)
                     >= (l.l).max_running),
           {schema}.jobs_runnable_priorities()
    INTO lims, has_rate, full_keys, full_queues, priorities;
    -- Passes: a pass that turned candidates away because their bucket is full
    -- goes again past those keys, so a key whose backlog heads the queue takes
    -- its room and no more, and the keys behind it get the rest of the slots.
    FOR pass IN 1..4 LOOP
        -- 1. Candidates in claim order, unlocked: half as many again as the
        -- slots left, so the buckets locked and counted stay about one a slot.
        -- The fair order takes them round-robin across fairness keys.
        IF p_fair THEN
            SELECT array_agg(c.c_id ORDER BY c.c_ord), array_agg(c.c_queue ORDER BY c.c_ord),
                   array_agg(c.c_key ORDER BY c.c_ord)
            INTO c_ids, c_queues, c_keys
            FROM {schema}.job_fair_candidates(
                p_queues, p_kinds, (p_limit - cardinality(taken)) * 3 / 2 + 4,
                coalesce(p_exclude, '{}') || taken, full_queues, full_keys) AS c;
        ELSE
            SELECT array_agg(j.id ORDER BY j.priority DESC, j.run_at, j.id),
                   array_agg(j.queue ORDER BY j.priority DESC, j.run_at, j.id),
                   array_agg(j.concurrency_key ORDER BY j.priority DESC, j.run_at, j.id)
            INTO c_ids, c_queues, c_keys
            FROM (
                SELECT j.id, j.queue, j.concurrency_key, j.priority, j.run_at
                FROM {schema}.jobs AS j
                WHERE j.status IN ('queued', 'retrying')
                  -- Each priority scanned on its own (migration 0012 says why).
                  AND j.priority = ANY (priorities)
                  AND j.run_at <= now()
                  AND (p_queues IS NULL OR j.queue = ANY (p_queues))
                  AND (p_kinds IS NULL OR j.kind = ANY (p_kinds))
                  AND NOT j.id = ANY (coalesce(p_exclude, '{}'))
                  AND NOT j.id = ANY (taken)
                  -- coalesce: the same test, written so that the planner does
                  -- not take it to reject every row when the column has one
                  -- value (one queue, one key) and sort the whole backlog for
                  -- what it thinks is one row.
                  AND NOT coalesce(j.queue = ANY (full_queues), false)
                  AND NOT coalesce(j.concurrency_key = ANY (full_keys), false)
                  AND NOT EXISTS (SELECT 1 FROM {schema}.queues AS q
                                  WHERE q.name = j.queue AND q.paused)
                ORDER BY j.priority DESC, j.run_at, j.id
                -- Hidden from the planner, as in the plain claim: a generic
                -- plan that saw a parameter here sorted the whole backlog.
                LIMIT (SELECT (p_limit - cardinality(taken)) * 3 / 2 + 4)
            ) AS j;
        END IF;
        EXIT WHEN c_ids IS NULL;
        -- 2. Each candidate's buckets: one per limit that covers it (per key,
        -- or the queue as a whole). 3. Lock the buckets not met before,
        -- skipping those another claimer holds (as SKIP LOCKED skips rows): no
        -- claimer waits on another, none can deadlock. A bucket not got has no
        -- room.
        WITH p AS MATERIALIZED (
            SELECT c.ord::integer AS ord,
                   l.name || '|' || CASE WHEN l.key_pattern IS NULL THEN '' ELSE c.k END AS b
            FROM unnest(c_queues, c_keys) WITH ORDINALITY AS c(q, k, ord)
            JOIN unnest(lims) AS l
              ON (l.queue IS NULL OR l.queue = c.q)
             AND (l.key_pattern IS NULL OR c.k LIKE l.key_pattern)
        )
        SELECT (SELECT array_agg(p.ord ORDER BY p.ord, p.b) FROM p),
               (SELECT array_agg(p.b ORDER BY p.ord, p.b) FROM p),
               ARRAY(SELECT d.b FROM (SELECT DISTINCT p.b FROM p
                                      WHERE NOT p.b = ANY (k_buckets) ORDER BY p.b) AS d
                     WHERE pg_try_advisory_xact_lock(hashtext('jobq.flow'), hashtext(d.b)))
        INTO p_ords, p_buckets, held;
        IF p_ords IS NOT NULL THEN
            got := got || held;
            -- 4. The room of each, read in a snapshot taken after the locks: it
            -- sees every claim committed by an earlier holder. A rate counts
            -- its window from now and records the starts a little later
            -- (`started`): the window counted is the wider one, so no period
            -- of recorded starts ever holds more than the rate.
            WITH met AS (
                SELECT DISTINCT p.b, split_part(p.b, '|', 1) AS name,
                       substr(p.b, strpos(p.b, '|') + 1) AS key
                FROM unnest(p_buckets) AS p(b)
                WHERE NOT p.b = ANY (k_buckets)
            ),
            running AS MATERIALIZED (
                -- Running jobs per held key: one scan of the keyed-running index.
                SELECT j.concurrency_key AS key, j.queue, count(*) AS n
                FROM {schema}.jobs AS j
                WHERE j.status = 'running' AND j.concurrency_key IS NOT NULL
                  AND j.concurrency_key = ANY (ARRAY(
                      SELECT substr(h.b, strpos(h.b, '|') + 1) FROM unnest(held) AS h(b)))
                GROUP BY 1, 2
            )
            SELECT k_buckets || array_agg(m.b), k_rooms || array_agg(CASE
                       WHEN NOT m.b = ANY (held) THEN 0
                       ELSE least(
                           coalesce(l.max_running - CASE
                               WHEN l.key_pattern IS NOT NULL THEN coalesce((
                                   SELECT sum(r.n) FROM running AS r
                                   WHERE r.key = m.key
                                     AND (l.queue IS NULL OR r.queue = l.queue)), 0)
                               -- A queue-wide limit: every running job of its queue(s).
                               ELSE (SELECT count(*) FROM {schema}.jobs AS j
                                     WHERE j.status = 'running'
                                       AND (l.queue IS NULL OR j.queue = l.queue)) END,
                                    2147483647),
                           CASE WHEN l.rate IS NOT NULL THEN l.rate - (
                               SELECT count(*) FROM {schema}.flow_rate_windows AS w,
                                                    unnest(w.starts) AS s
                               WHERE w.limit_name = l.name AND w.key = m.key
                                 AND s > clock_timestamp()
                                         - make_interval(secs => l.period_seconds))
                           ELSE 2147483647 END) END)
            INTO k_buckets, k_rooms
            FROM met AS m
            JOIN unnest(lims) AS l ON l.name = m.name;
        END IF;
        -- 5. Admit a candidate when, in each of its buckets, it is among the
        -- first `room` candidates of that bucket. Counting rejected candidates
        -- in the other buckets' ranks only admits fewer.
        new_taken := ARRAY(
            SELECT j.id FROM {schema}.jobs AS j
            WHERE j.id = ANY (ARRAY(
                SELECT c_ids[c.ord] FROM generate_subscripts(c_ids, 1) AS c(ord)
                WHERE NOT EXISTS (
                    SELECT 1
                    FROM (SELECT p.ord, p.b,
                                 row_number() OVER (PARTITION BY p.b ORDER BY p.ord) AS rank
                          FROM unnest(p_ords, p_buckets) AS p(ord, b)) AS p
                    WHERE p.ord = c.ord
                      AND p.rank > k_rooms[array_position(k_buckets, p.b)])
                ORDER BY c.ord
                LIMIT p_limit - cardinality(taken)))
              AND j.status IN ('queued', 'retrying')
              AND j.run_at <= now()
            FOR UPDATE SKIP LOCKED);
        taken := taken || new_taken;
        EXIT WHEN p_ords IS NULL;
        -- The room the new claims used up: read by the next pass, and by the
        -- rate limits' bookkeeping after the last.
        IF has_rate OR (cardinality(taken) < p_limit
                        AND cardinality(new_taken) < cardinality(c_ids)) THEN
            WITH used AS MATERIALIZED (
                SELECT p.b FROM unnest(p_ords, p_buckets) AS p(ord, b)
                WHERE c_ids[p.ord] = ANY (new_taken)
            )
            SELECT taken_buckets || ARRAY(SELECT u.b FROM used AS u),
                   ARRAY(SELECT k_rooms[i] - (SELECT count(*) FROM used AS u
                                              WHERE u.b = k_buckets[i])
                         FROM generate_subscripts(k_buckets, 1) AS i ORDER BY i)
            INTO taken_buckets, k_rooms;
        END IF;
        EXIT WHEN cardinality(taken) >= p_limit;
        -- Go again only if candidates were turned away for want of room.
        EXIT WHEN cardinality(new_taken) >= cardinality(c_ids);
        SELECT full_keys || ARRAY(
                   SELECT substr(k_buckets[i], strpos(k_buckets[i], '|') + 1)
                   FROM generate_subscripts(k_buckets, 1) AS i
                   WHERE k_rooms[i] <= 0 AND NOT k_buckets[i] LIKE '%|'),
               full_queues || ARRAY(
                   SELECT l.queue FROM generate_subscripts(k_buckets, 1) AS i
                   JOIN unnest(lims) AS l ON l.name = split_part(k_buckets[i], '|', 1)
                   WHERE k_rooms[i] <= 0 AND k_buckets[i] LIKE '%|' AND l.queue IS NOT NULL)
        INTO full_keys, full_queues;
        -- A full limit on every queue leaves nothing to find.
        EXIT WHEN EXISTS (
            SELECT 1 FROM generate_subscripts(k_buckets, 1) AS i
            JOIN unnest(lims) AS l ON l.name = split_part(k_buckets[i], '|', 1)
            WHERE k_rooms[i] <= 0 AND k_buckets[i] LIKE '%|' AND l.queue IS NULL);
    END LOOP;
    -- The start, after every lock and count: a job that ran before under one of
    -- these buckets had committed its finish (finished_at <= its commit) before
    -- the lock was free, so a key's history never shows more overlapping
    -- attempts than its limit.
    started := clock_timestamp();
    IF has_rate AND cardinality(taken) > 0 THEN
        INSERT INTO {schema}.flow_rate_windows AS w (limit_name, key, starts)
        SELECT l.name, substr(u.b, length(l.name) + 2), array_fill(started, ARRAY[u.n::integer])
        FROM (SELECT t AS b, count(*) AS n FROM unnest(taken_buckets) AS t GROUP BY t) AS u
        JOIN unnest(lims) AS l ON l.name = split_part(u.b, '|', 1)
        WHERE l.rate IS NOT NULL
        ON CONFLICT (limit_name, key) DO UPDATE
        SET starts = ARRAY(
            SELECT s FROM unnest(w.starts) AS s
            WHERE s > started - make_interval(secs => (SELECT l2.period_seconds
                                                       FROM {schema}.flow_limits AS l2
                                                       WHERE l2.name = w.limit_name))
        ) || excluded.starts;
    END IF;
    -- Slots left unfilled: when does a rate bucket that is full (this claim's
    -- starts counted) let the next job start? When its rate-th newest start
    -- leaves the period. A rate bucket another claimer held: a moment from now.
    IF has_rate AND cardinality(taken) < p_limit THEN
        opens := (
            SELECT min(CASE
                WHEN NOT k_buckets[i] = ANY (got) THEN started + interval '20 milliseconds'
                ELSE (SELECT s.t + make_interval(secs => l.period_seconds)
                      FROM (SELECT t, row_number() OVER (ORDER BY t DESC) AS n
                            FROM {schema}.flow_rate_windows AS w, unnest(w.starts) AS t
                            WHERE w.limit_name = l.name
                              AND w.key = substr(k_buckets[i], length(l.name) + 2)
                              AND t > started - make_interval(secs => l.period_seconds)) AS s
                      WHERE s.n = l.rate) END)
            FROM generate_subscripts(k_buckets, 1) AS i
            JOIN unnest(lims) AS l ON l.name = split_part(k_buckets[i], '|', 1)
            WHERE k_rooms[i] <= 0 AND l.rate IS NOT NULL);
        IF opens IS NOT NULL THEN
            RETURN QUERY SELECT NULL::uuid, NULL::timestamptz, opens, clock_timestamp();
        END IF;
    END IF;
    RETURN QUERY SELECT t.id, started, NULL::timestamptz, NULL::timestamptz
                 FROM unnest(taken) AS t(id);
END;
$fn$;

-- The limited claim of migration 0011, for a worker of an earlier version
-- (the claim statement of this one calls job_flow_pick): the jobs picked, set
-- `running`, and the rate marker row.
CREATE OR REPLACE FUNCTION {schema}.job_claim_limited(
    p_worker text, p_queues text[], p_kinds text[], p_limit integer, p_lease float8,
    p_exclude uuid[], p_fair boolean
) RETURNS SETOF {schema}.jobs
LANGUAGE sql VOLATILE AS $fn$
    WITH picked AS MATERIALIZED (
        SELECT p.* FROM {schema}.job_flow_pick(p_queues, p_kinds, p_limit, p_exclude, p_fair) AS p
    ),
    took AS (
        UPDATE {schema}.jobs AS j
        SET status = 'running',
            attempts = j.attempts + 1,
            attempt_seq = j.attempt_seq + 1,
            locked_by = p_worker,
            lease_expires_at = now() + make_interval(secs => p_lease),
            started_at = (SELECT max(p.o_started) FROM picked AS p),
            progress = NULL,
            progress_details = NULL,
            progress_at = NULL,
            updated_at = now()
        WHERE j.id = ANY (ARRAY(SELECT p.o_id FROM picked AS p WHERE p.o_id IS NOT NULL))
        RETURNING j.*
    )
    SELECT t.* FROM took AS t
    UNION ALL
    SELECT m.* FROM picked AS p,
        json_populate_record(NULL::{schema}.jobs,
                             json_build_object('run_at', p.o_opens, 'updated_at', p.o_said)) AS m
    WHERE p.o_id IS NULL;
$fn$;
