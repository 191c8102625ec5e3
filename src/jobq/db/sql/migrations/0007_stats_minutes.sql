-- jobq schema, version 7: a per-minute rollup of finished jobs and queue depth
-- for the dashboard's charts (GET /v1/stats/throughput), written by the
-- maintenance leader (jobq.db.stats) and pruned after JOBQ_STATS_RETENTION.
-- {schema} is replaced by the quoted schema name. Additive (SPEC §10): nothing
-- existing changes but one partial index on the attempt history.

-- One row per (queue, minute) that saw a job finish or was sampled; queue ''
-- (never a queue's name: names start with a letter or digit) holds the sum
-- over every queue, and its depth is written at every sample, zero or not, so
-- it also marks the minutes that were sampled. A minute's counts are written
-- once it has settled (jobq.db.stats): a count is a function of the rows
-- finished in that minute, upserted, never an increment, so a second writer
-- after a failover writes the same number instead of adding to it.
CREATE TABLE {schema}.stats_minutes (
    queue             text        NOT NULL,
    minute            timestamptz NOT NULL,
    -- Jobs that finished in the minute, by final state...
    succeeded         integer     NOT NULL DEFAULT 0,
    failed_permanent  integer     NOT NULL DEFAULT 0,
    cancelled         integer     NOT NULL DEFAULT 0,
    -- ...and attempts that failed (or whose lease expired) with the job to run again.
    retried           integer     NOT NULL DEFAULT 0,
    -- Depth at the minute's sample: jobs queued or retrying and due, and
    -- running. NULL: not sampled in this minute.
    waiting           integer,
    running           integer,
    PRIMARY KEY (queue, minute)
);

-- The rollup's progress: minutes before `counted_through` are counted, and the
-- depth was last sampled in `sampled_minute`. One row, locked by each rollup
-- transaction, so two writers take turns.
CREATE TABLE {schema}.stats_rollup (
    name             text        PRIMARY KEY,
    counted_through  timestamptz,
    sampled_minute   timestamptz
);
INSERT INTO {schema}.stats_rollup (name) VALUES ('minutes');

-- The retries a minute saw are failed attempts, read from the history by
-- finish time. Partial: an attempt that succeeded (most of them, and the
-- benchmarked path) or snoozed adds no index entry; only failures pay for one.
-- Built in the migration's transaction (not CONCURRENTLY, which cannot run in
-- one): finishes wait while it reads the history once, seconds on millions of
-- attempts.
CREATE INDEX job_attempts_failed_idx ON {schema}.job_attempts (finished_at)
    WHERE outcome IN ('failed', 'lease_expired');
