-- jobq schema, version 10: debounce (issue 18). {schema} is replaced by the
-- quoted schema name. Additive (SPEC §10). See docs/DESIGN.md, "Flow control".

-- debounce_key: the job's debounce key (its kind and the key, jobq.flow). While
-- the job waits for its first start, a debounced enqueue with the same key
-- replaces it (payload, run_at pushed to the enqueue's now plus the delay)
-- instead of inserting another job. NULL for every job that is not debounced.
ALTER TABLE {schema}.jobs ADD COLUMN debounce_key text;

-- One waiting job per debounce key: the arbiter of job_insert_many's
-- ON CONFLICT ... DO UPDATE. Only a job never started is replaceable
-- (attempt_seq = 0): a snoozed or released job is queued again with attempt_seq
-- above 0, and leaves the index as soon as it is claimed, so an enqueue after
-- the start makes a new job. Jobs without a key never enter the index.
CREATE UNIQUE INDEX jobs_debounce_key_idx ON {schema}.jobs (debounce_key)
    WHERE debounce_key IS NOT NULL AND status = 'queued' AND attempt_seq = 0;

-- The limited claim of migration 0009, unchanged but for one line in step 5:
-- the rows it locks are checked again for `run_at <= now()`. A debounce moves a
-- queued job's run_at forward; the candidates of step 1 were read in an earlier
-- snapshot, so without the check a job pushed back after step 1 would start
-- early. (The plain claim is one statement: its FOR UPDATE re-evaluates the
-- whole WHERE, run_at included, on the row version it locks.)
CREATE OR REPLACE FUNCTION {schema}.job_claim_limited(
    p_worker text, p_queues text[], p_kinds text[], p_limit integer, p_lease float8,
    p_exclude uuid[]
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
              -- Re-read under the row lock: a debounce may have pushed the
              -- job's run_at past now since step 1 picked it.
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
    IF cardinality(taken) = 0 THEN
        RETURN;
    END IF;
    -- The start, after every lock and count: a job that ran before under one of
    -- these buckets had committed its finish (finished_at <= its commit) before
    -- the lock was free, so a key's history never shows more overlapping
    -- attempts than its limit.
    started := clock_timestamp();
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
