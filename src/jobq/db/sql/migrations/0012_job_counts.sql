-- jobq schema, version 12: job counts per queue and state, kept as jobs change,
-- and a claim that stops at the first job not yet due. {schema} is replaced by
-- the quoted schema name. Additive (SPEC §10). See docs/DESIGN.md, "Big tables".

-- Counting jobs by state scanned the whole table: 1.15 s for GET /v1/queues on
-- 5M finished jobs, and the dashboard polls it. The counts are kept instead:
-- every statement that inserts, updates or deletes jobs appends the change of
-- each (queue, status) count to job_count_deltas (a statement-level trigger,
-- so every path is covered, including SQL run by hand); the maintenance loop
-- and the readers fold the deltas into job_counts. A reader sums both tables
-- in one snapshot, so the counts are exact as of its snapshot, never an
-- estimate, and the cost of a read is the number of (queue, status) pairs plus
-- the deltas appended since the last fold.
--
-- Appending instead of updating a row per (queue, status) keeps writers from
-- queueing on one hot counter row: two claimers never wait on each other here.
CREATE TABLE {schema}.job_counts (
    queue   text   NOT NULL,
    status  text   NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (queue, status)
);

-- No index: the fold reads and deletes every row. Vacuumed often, as a table
-- that is emptied every few seconds needs.
CREATE TABLE {schema}.job_count_deltas (
    queue   text   NOT NULL,
    status  text   NOT NULL,
    n       bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 5000);

CREATE FUNCTION {schema}.jobs_count_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.job_count_deltas (queue, status, n)
    SELECT queue, status, count(*) FROM jobq_new_rows GROUP BY 1, 2;
    RETURN NULL;
END
$$;

-- An update that changes no job's queue or status (a heartbeat, progress)
-- appends nothing.
CREATE FUNCTION {schema}.jobs_count_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.job_count_deltas (queue, status, n)
    SELECT queue, status, sum(n) FROM (
        SELECT queue, status, -1 AS n FROM jobq_old_rows
        UNION ALL
        SELECT queue, status, 1 FROM jobq_new_rows
    ) AS changes
    GROUP BY 1, 2
    HAVING sum(n) <> 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION {schema}.jobs_count_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {schema}.job_count_deltas (queue, status, n)
    SELECT queue, status, -count(*) FROM jobq_old_rows GROUP BY 1, 2;
    RETURN NULL;
END
$$;

CREATE FUNCTION {schema}.jobs_count_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {schema}.job_counts;
    DELETE FROM {schema}.job_count_deltas;
    RETURN NULL;
END
$$;

-- Taking the triggers' lock on jobs (SHARE ROW EXCLUSIVE) holds every writer
-- off until this migration commits, so the counts below start exact.
CREATE TRIGGER jobs_count_inserted
AFTER INSERT ON {schema}.jobs
REFERENCING NEW TABLE AS jobq_new_rows
FOR EACH STATEMENT EXECUTE FUNCTION {schema}.jobs_count_inserted();

CREATE TRIGGER jobs_count_updated
AFTER UPDATE ON {schema}.jobs
REFERENCING OLD TABLE AS jobq_old_rows NEW TABLE AS jobq_new_rows
FOR EACH STATEMENT EXECUTE FUNCTION {schema}.jobs_count_updated();

CREATE TRIGGER jobs_count_deleted
AFTER DELETE ON {schema}.jobs
REFERENCING OLD TABLE AS jobq_old_rows
FOR EACH STATEMENT EXECUTE FUNCTION {schema}.jobs_count_deleted();

CREATE TRIGGER jobs_count_truncated
AFTER TRUNCATE ON {schema}.jobs
FOR EACH STATEMENT EXECUTE FUNCTION {schema}.jobs_count_truncated();

INSERT INTO {schema}.job_counts (queue, status, n)
SELECT queue, status, count(*) FROM {schema}.jobs GROUP BY 1, 2;

-- The priorities that queued or retrying jobs have: one index descent each,
-- skipping from one priority to the next in jobs_runnable_idx.
--
-- Why: the claim reads jobs_runnable_idx (priority DESC, run_at, id) with
-- `run_at <= now()`. With no condition on priority, the leading column, that
-- bound is checked on every entry but cannot end the scan, so a claim that
-- finds fewer due jobs than it asks for (every idle poll, the end of every
-- burst) read on through every job scheduled for later: 1M entries, 130 ms,
-- with a million jobs scheduled for the coming month. Given `priority = ANY
-- (these)`, PostgreSQL scans each priority on its own, in index order, and
-- stops each at its first job not yet due.
--
-- The skip goes from the lowest priority up, reading the index backwards:
-- each descent lands on the latest run_at of a priority, a live entry, not on
-- its earliest, where the entries of claimed jobs wait dead for a vacuum (tens
-- of thousands of them on a big table, whose vacuum runs less often).
-- plpgsql, not sql, so that its plan is kept between calls.
CREATE FUNCTION {schema}.jobs_runnable_priorities() RETURNS smallint[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(
        WITH RECURSIVE p(priority) AS (
            (SELECT j.priority FROM {schema}.jobs AS j
             WHERE j.status IN ('queued', 'retrying')
             ORDER BY j.priority LIMIT 1)
            UNION ALL
            SELECT (SELECT j.priority FROM {schema}.jobs AS j
                    WHERE j.status IN ('queued', 'retrying') AND j.priority > p.priority
                    ORDER BY j.priority LIMIT 1)
            FROM p WHERE p.priority IS NOT NULL
        )
        SELECT priority FROM p WHERE priority IS NOT NULL);
END
$$;

-- Vacuum on a big table. With autovacuum's scale factor (1%, migration 0001)
-- a table of 10M jobs is vacuumed once 100,000 rows are dead, and even then
-- PostgreSQL skips its indexes while under 2% of its pages hold dead rows
-- (the bypass of index vacuuming): the entries of claimed jobs pile up at the
-- head of jobs_runnable_idx, where every claim walks over them (measured:
-- 240,000 dead entries, 1,200 pages, after 11 drains of 20,000 jobs). A
-- fixed threshold and index cleanup on make the big table's vacuum as
-- frequent, and as thorough, as a small one's; on 10M rows each costs a read
-- of the indexes (9 s, 1.4 s of CPU, measured), at most once a naptime.
ALTER TABLE {schema}.jobs SET (
    vacuum_index_cleanup = on,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000
);

-- Lists of failed, cancelled or pending jobs, newest first, with or without a
-- queue: the dashboard's state filters. Without these a filter on a state that
-- few rows of a queue are in read the queue's rows until it found a page (all
-- of them when it had none: seconds at 10M rows). Only rows in these states
-- enter: no claim, no success and no enqueue outside a workflow writes here.
CREATE INDEX jobs_settled_status_id_idx ON {schema}.jobs (status, id DESC)
    WHERE status IN ('pending', 'failed_permanent', 'cancelled');
CREATE INDEX jobs_settled_queue_status_id_idx ON {schema}.jobs (queue, status, id DESC)
    WHERE status IN ('pending', 'failed_permanent', 'cancelled');
