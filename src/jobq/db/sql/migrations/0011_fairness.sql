-- jobq schema, version 11: fairness keys, and a limited claim that says when a
-- rate limit next lets a job start. {schema} is replaced by the quoted schema
-- name. Additive (SPEC §10). See docs/DESIGN.md, "Flow control".

-- fairness_key: the lane a job waits in (a tenant, a customer) when the claim
-- takes jobs round-robin across lanes (from the task's definition or the
-- enqueue call). NULL for jobs that do not use it: they are not indexed here,
-- so a queue that never uses fairness pays one NULL column and nothing more.
ALTER TABLE {schema}.jobs ADD COLUMN fairness_key text;

-- The fair claim's index: the runnable keyed jobs of each queue and key, in the
-- claim's order within the key. The fair candidate scan walks the distinct
-- (queue, key) pairs of it by skip scan (one descent per key) and reads the
-- first few rows of each key, so its cost grows with the keys waiting and the
-- slots to fill, not with the backlog.
CREATE INDEX jobs_fairness_idx ON {schema}.jobs (queue, fairness_key, priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying') AND fairness_key IS NOT NULL;

-- The fair claim's candidates, best first (c_ord 1, 2, ...), at most p_want of
-- them: the runnable jobs of the worker's queues and kinds, minus p_skip and
-- the queues and concurrency keys a limit holds full (the limited claim passes
-- those; the fair claim passes none). Each lane is a (queue, fairness key)
-- pair, and the jobs without a key are one more lane. A job's rank is its
-- place within its lane (by priority, then run_at); candidates go by rank,
-- then priority, run_at and id: every lane's first job before any lane's
-- second, so one key's backlog cannot hold another key's job back by more
-- than one job per lane. Priority orders the jobs within a lane, and the lanes'
-- jobs of the same rank among themselves.
--
-- Reads the first `per_lane` jobs of each lane: a little more than an even
-- share of p_want, and p_want each when that found too few while some lane
-- had more (most lanes hold less than their share).
--
-- STABLE: it reads in the calling statement's snapshot, like the claim it
-- feeds (the rows it names are locked and re-checked by the caller). Generic
-- plans: its statements' plans do not depend on the values, and planning them
-- again at each call cost more than running them (measured: 1.1 ms a call
-- with custom plans, 0.5 ms with generic ones, 2 keys and 10,000 jobs).
CREATE FUNCTION {schema}.job_fair_candidates(
    p_queues text[], p_kinds text[], p_want integer, p_skip uuid[],
    p_full_queues text[], p_full_keys text[]
) RETURNS TABLE (c_id uuid, c_queue text, c_key text, c_ord bigint)
LANGUAGE plpgsql STABLE ROWS 20
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    queues text[];
    q text;
    lane_queues text[] := '{}';
    lane_keys text[] := '{}';
    per_lane integer;
    ids uuid[];
    qs text[];
    ks text[];
    deepest bigint;
    unkeyed_reach integer;
BEGIN
    IF p_want IS NULL OR p_want <= 0 THEN
        RETURN;
    END IF;
    p_skip := coalesce(p_skip, '{}');
    p_full_queues := coalesce(p_full_queues, '{}');
    p_full_keys := coalesce(p_full_keys, '{}');
    -- The queues with keyed jobs waiting: the worker's, else a skip scan.
    queues := coalesce(p_queues, ARRAY(
        WITH RECURSIVE walk AS (
            (SELECT j.queue FROM {schema}.jobs AS j
             WHERE j.status IN ('queued', 'retrying') AND j.fairness_key IS NOT NULL
             ORDER BY j.queue LIMIT 1)
            UNION ALL
            SELECT (SELECT j.queue FROM {schema}.jobs AS j
                    WHERE j.status IN ('queued', 'retrying') AND j.fairness_key IS NOT NULL
                      AND j.queue > w.queue
                    ORDER BY j.queue LIMIT 1)
            FROM walk AS w WHERE w.queue IS NOT NULL
        )
        SELECT w.queue FROM walk AS w WHERE w.queue IS NOT NULL));
    queues := ARRAY(
        SELECT u.q FROM unnest(queues) AS u(q)
        WHERE NOT u.q = ANY (p_full_queues)
          AND NOT EXISTS (SELECT 1 FROM {schema}.queues AS p WHERE p.name = u.q AND p.paused));
    -- The keys of each queue, by skip scan of jobs_fairness_idx.
    FOREACH q IN ARRAY queues LOOP
        WITH RECURSIVE walk AS (
            (SELECT j.fairness_key AS k FROM {schema}.jobs AS j
             WHERE j.status IN ('queued', 'retrying') AND j.fairness_key IS NOT NULL
               AND j.queue = q
             ORDER BY j.fairness_key LIMIT 1)
            UNION ALL
            SELECT (SELECT j.fairness_key FROM {schema}.jobs AS j
                    WHERE j.status IN ('queued', 'retrying') AND j.fairness_key IS NOT NULL
                      AND j.queue = q AND j.fairness_key > w.k
                    ORDER BY j.fairness_key LIMIT 1)
            FROM walk AS w WHERE w.k IS NOT NULL
        )
        SELECT lane_queues || array_agg(q), lane_keys || array_agg(w.k)
        INTO lane_queues, lane_keys
        FROM walk AS w WHERE w.k IS NOT NULL;
        lane_queues := coalesce(lane_queues, '{}');
        lane_keys := coalesce(lane_keys, '{}');
    END LOOP;
    per_lane := least(p_want, p_want / (cardinality(lane_keys) + 1) + 2);
    IF (cardinality(lane_keys) + 1) * p_want <= 256 THEN
        per_lane := p_want;  -- few lanes: reading all p_want of each costs less than a second pass
    END IF;
    unkeyed_reach := p_want * 4 + 256;
    LOOP
        WITH lanes AS (
            SELECT x.id, x.queue, x.concurrency_key, x.priority, x.run_at, x.rank
            FROM unnest(lane_queues, lane_keys) AS l(q, k)
            CROSS JOIN LATERAL (
                SELECT s.*, row_number() OVER (ORDER BY s.priority DESC, s.run_at, s.id) AS rank
                FROM (
                    SELECT j.id, j.queue, j.concurrency_key, j.priority, j.run_at
                    FROM {schema}.jobs AS j
                    WHERE j.status IN ('queued', 'retrying') AND j.fairness_key IS NOT NULL
                      AND j.queue = l.q AND j.fairness_key = l.k
                      AND j.run_at <= now()
                      AND (p_kinds IS NULL OR j.kind = ANY (p_kinds))
                      AND NOT j.id = ANY (p_skip)
                      AND (j.concurrency_key IS NULL OR NOT j.concurrency_key = ANY (p_full_keys))
                    ORDER BY j.priority DESC, j.run_at, j.id
                    LIMIT per_lane
                ) AS s
            ) AS x
            UNION ALL
            -- The lane of the jobs without a key: the first `unkeyed_reach` rows
            -- of the plain claim's order (jobs_runnable_idx), keyed or not. No
            -- index holds the unkeyed jobs alone (one would cost every enqueue
            -- of every user), so a walk to the first one is bounded: an unkeyed
            -- job behind more keyed jobs than that waits until fewer are ahead.
            SELECT s.id, s.queue, s.concurrency_key, s.priority, s.run_at,
                   row_number() OVER (ORDER BY s.priority DESC, s.run_at, s.id)
            FROM (
                SELECT j.*
                FROM (SELECT j.id, j.queue, j.kind, j.concurrency_key, j.fairness_key,
                             j.priority, j.run_at
                      FROM {schema}.jobs AS j
                      WHERE j.status IN ('queued', 'retrying') AND j.run_at <= now()
                      ORDER BY j.priority DESC, j.run_at, j.id
                      LIMIT unkeyed_reach) AS j
                WHERE j.fairness_key IS NULL
                  AND (p_queues IS NULL OR j.queue = ANY (p_queues))
                  AND (p_kinds IS NULL OR j.kind = ANY (p_kinds))
                  AND NOT j.id = ANY (p_skip)
                  AND NOT j.queue = ANY (p_full_queues)
                  AND (j.concurrency_key IS NULL OR NOT j.concurrency_key = ANY (p_full_keys))
                  AND NOT EXISTS (SELECT 1 FROM {schema}.queues AS p
                                  WHERE p.name = j.queue AND p.paused)
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT per_lane
            ) AS s
        ),
        best AS (
            SELECT c.*, max(c.rank) OVER () AS deepest
            FROM lanes AS c
            ORDER BY c.rank, c.priority DESC, c.run_at, c.id
            LIMIT p_want
        )
        SELECT array_agg(b.id ORDER BY b.rank, b.priority DESC, b.run_at, b.id),
               array_agg(b.queue ORDER BY b.rank, b.priority DESC, b.run_at, b.id),
               array_agg(b.concurrency_key ORDER BY b.rank, b.priority DESC, b.run_at, b.id),
               max(b.deepest)
        INTO ids, qs, ks, deepest
        FROM best AS b;
        -- Enough, or no lane had more than was read: done. Else once more, deeper.
        EXIT WHEN coalesce(cardinality(ids), 0) >= p_want OR per_lane >= p_want
                  OR coalesce(deepest, 0) < per_lane;
        per_lane := p_want;
    END LOOP;
    RETURN QUERY SELECT u.id, u.q, u.k, u.ord FROM unnest(ids, qs, ks) WITH ORDINALITY AS u(id, q, k, ord);
END;
$fn$;

-- The limited claim again (migration 0009 has its design), now also:
-- - p_fair: candidates in the fair order (job_fair_candidates), for a worker
--   whose queues have keyed jobs waiting;
-- - the row-locking step re-checks run_at, as the plain claim does;
-- - when it fills fewer than p_limit slots and a rate limit held jobs back, one
--   more row that is not a job: id NULL, run_at the time the earliest full
--   rate bucket lets one more job start (or a moment from now for a bucket
--   another claimer held), updated_at the time it said so (the wait is the
--   difference, on the database's clock), so the worker claims again then
--   instead of at its next poll.
DROP FUNCTION {schema}.job_claim_limited(text, text[], text[], integer, float8, uuid[]);

CREATE FUNCTION {schema}.job_claim_limited(
    p_worker text, p_queues text[], p_kinds text[], p_limit integer, p_lease float8,
    p_exclude uuid[], p_fair boolean
) RETURNS SETOF {schema}.jobs
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    lims {schema}.flow_limits[];
    full_keys text[];
    full_queues text[];
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
    taken_buckets text[] := '{}';  -- one entry per (claimed job, bucket)
    rejected boolean;
    started timestamptz;
    got text[] := '{}';         -- every bucket whose lock this claim holds
    opens timestamptz;
    marker {schema}.jobs;
BEGIN
    IF p_limit IS NULL OR p_limit <= 0 THEN
        RETURN;
    END IF;
    lims := ARRAY(SELECT l FROM {schema}.flow_limits AS l
                  WHERE l.queue IS NULL OR p_queues IS NULL OR l.queue = ANY (p_queues));
    -- A hint, read without locks: keys and queues already at their limit, whose
    -- jobs the candidate scan steps over in C.
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
            SELECT array_agg(c.id ORDER BY c.ord), array_agg(c.queue ORDER BY c.ord),
                   array_agg(c.concurrency_key ORDER BY c.ord)
            INTO c_ids, c_queues, c_keys
            FROM (
                SELECT j.id, j.queue, j.concurrency_key,
                       row_number() OVER (ORDER BY j.priority DESC, j.run_at, j.id) AS ord
                FROM (
                    SELECT j.id, j.queue, j.concurrency_key, j.priority, j.run_at
                    FROM {schema}.jobs AS j
                    WHERE j.status IN ('queued', 'retrying')
                      AND j.run_at <= now()
                      AND (p_queues IS NULL OR j.queue = ANY (p_queues))
                      AND (p_kinds IS NULL OR j.kind = ANY (p_kinds))
                      AND NOT j.id = ANY (coalesce(p_exclude, '{}'))
                      AND NOT j.id = ANY (taken)
                      AND NOT j.queue = ANY (full_queues)
                      AND (j.concurrency_key IS NULL OR NOT j.concurrency_key = ANY (full_keys))
                      AND NOT EXISTS (SELECT 1 FROM {schema}.queues AS q
                                      WHERE q.name = j.queue AND q.paused)
                    ORDER BY j.priority DESC, j.run_at, j.id
                    LIMIT (p_limit - cardinality(taken)) * 3 / 2 + 4
                ) AS j
            ) AS c;
        END IF;
        EXIT WHEN c_ids IS NULL;
        -- 2. Each candidate's buckets: one per limit that covers it (per key,
        -- or the queue as a whole).
        SELECT array_agg(c.ord), array_agg(l.name || '|' || CASE WHEN l.key_pattern IS NULL
                                                             THEN '' ELSE c.k END)
        INTO p_ords, p_buckets
        FROM unnest(c_queues, c_keys) WITH ORDINALITY AS c(q, k, ord)
        JOIN unnest(lims) AS l
          ON (l.queue IS NULL OR l.queue = c.q)
         AND (l.key_pattern IS NULL OR c.k LIKE l.key_pattern);
        IF p_ords IS NOT NULL THEN
            -- 3. Lock the buckets not met before, skipping those another
            -- claimer holds (as SKIP LOCKED skips rows): no claimer waits on
            -- another, none can deadlock. A bucket not got has no room.
            held := ARRAY(
                SELECT b FROM (SELECT DISTINCT b FROM unnest(p_buckets) AS b
                               WHERE NOT b = ANY (k_buckets) ORDER BY b) AS d
                WHERE pg_try_advisory_xact_lock(hashtext('jobq.flow'), hashtext(b)));
            got := got || held;
            -- 4. The room of each, read in a snapshot taken after the locks: it
            -- sees every claim committed by an earlier holder. A rate counts
            -- its window from now and records the starts a little later
            -- (`started`): the window counted is the wider one, so no period
            -- of recorded starts ever holds more than the rate.
            WITH running AS (
                -- Running jobs per held key: one scan of the keyed-running index.
                SELECT j.concurrency_key AS key, j.queue, count(*) AS n
                FROM {schema}.jobs AS j
                WHERE j.status = 'running' AND j.concurrency_key IS NOT NULL
                  AND j.concurrency_key = ANY (ARRAY(
                      SELECT substr(b, strpos(b, '|') + 1) FROM unnest(held) AS b))
                GROUP BY 1, 2
            ),
            met AS (
                SELECT DISTINCT b FROM unnest(p_buckets) AS b WHERE NOT b = ANY (k_buckets)
            )
            SELECT k_buckets || array_agg(m.b), k_rooms || array_agg(CASE
                       WHEN NOT m.b = ANY (held) THEN 0
                       ELSE least(
                           coalesce(l.max_running - CASE
                               WHEN l.key_pattern IS NOT NULL THEN coalesce((
                                   SELECT sum(r.n) FROM running AS r
                                   WHERE r.key = substr(m.b, length(l.name) + 2)
                                     AND (l.queue IS NULL OR r.queue = l.queue)), 0)
                               -- A queue-wide limit: every running job of its queue(s).
                               ELSE (SELECT count(*) FROM {schema}.jobs AS j
                                     WHERE j.status = 'running'
                                       AND (l.queue IS NULL OR j.queue = l.queue)) END,
                                    2147483647),
                           coalesce(l.rate - (
                               SELECT count(*) FROM {schema}.flow_rate_windows AS w,
                                                    unnest(w.starts) AS s
                               WHERE w.limit_name = l.name
                                 AND w.key = substr(m.b, length(l.name) + 2)
                                 AND s > clock_timestamp()
                                         - make_interval(secs => l.period_seconds)),
                                    2147483647)) END)
            INTO k_buckets, k_rooms
            FROM met AS m
            JOIN unnest(lims) AS l ON l.name = split_part(m.b, '|', 1);
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
        IF p_ords IS NOT NULL THEN
            -- The room the new claims used up, per bucket.
            SELECT taken_buckets || coalesce(array_agg(p.b), '{}')
            INTO taken_buckets
            FROM unnest(p_ords, p_buckets) AS p(ord, b)
            WHERE c_ids[p.ord] = ANY (new_taken);
            k_rooms := ARRAY(
                SELECT k_rooms[i] - (SELECT count(*) FROM unnest(p_ords, p_buckets) AS p(ord, b)
                                     WHERE p.b = k_buckets[i] AND c_ids[p.ord] = ANY (new_taken))
                FROM generate_subscripts(k_buckets, 1) AS i ORDER BY i);
        END IF;
        EXIT WHEN cardinality(taken) >= p_limit OR p_ords IS NULL;
        -- Go again only if candidates were turned away for want of room.
        rejected := cardinality(new_taken) < cardinality(c_ids);
        EXIT WHEN NOT rejected;
        full_keys := full_keys || ARRAY(
            SELECT substr(k_buckets[i], strpos(k_buckets[i], '|') + 1)
            FROM generate_subscripts(k_buckets, 1) AS i
            WHERE k_rooms[i] <= 0 AND NOT k_buckets[i] LIKE '%|');
        full_queues := full_queues || ARRAY(
            SELECT l.queue FROM generate_subscripts(k_buckets, 1) AS i
            JOIN unnest(lims) AS l ON l.name = split_part(k_buckets[i], '|', 1)
            WHERE k_rooms[i] <= 0 AND k_buckets[i] LIKE '%|' AND l.queue IS NOT NULL);
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
    IF cardinality(taken) > 0 THEN
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
    IF cardinality(taken) < p_limit THEN
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
            marker.run_at := opens;
            marker.updated_at := clock_timestamp();
            RETURN NEXT marker;
        END IF;
    END IF;
    IF cardinality(taken) = 0 THEN
        RETURN;
    END IF;
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
