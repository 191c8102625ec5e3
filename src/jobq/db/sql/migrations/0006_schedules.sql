-- jobq schema, version 6: periodic jobs (schedules), two new tables; nothing
-- existing changes. {schema} is replaced by the quoted schema name. Additive
-- (SPEC §10). It depends on no other version's tables.

-- One row per schedule, defined in code (`@app.periodic`, upserted by every
-- worker at start) or through the API. Exactly one of cron / every_seconds.
CREATE TABLE {schema}.schedules (
    name           text        PRIMARY KEY,
    kind           text        NOT NULL,
    cron           text,
    every_seconds  integer     CHECK (every_seconds BETWEEN 1 AND 31622400),
    timezone       text        NOT NULL DEFAULT 'UTC',
    queue          text        NOT NULL DEFAULT 'default',
    priority       smallint    NOT NULL DEFAULT 0,
    max_attempts   integer     CHECK (max_attempts BETWEEN 1 AND 1000),
    payload        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    missed         text        NOT NULL DEFAULT 'latest'
                     CHECK (missed IN ('latest', 'all', 'none')),
    max_backfill   integer     NOT NULL DEFAULT 100 CHECK (max_backfill BETWEEN 1 AND 1000),
    source         text        NOT NULL CHECK (source IN ('code', 'api')),
    -- Operator state: survives the upsert of a code-defined schedule.
    paused         boolean     NOT NULL DEFAULT false,
    -- The earliest fire time not handled yet; advanced in the transaction that
    -- inserts the fire's job.
    next_fire_at   timestamptz NOT NULL,
    last_fire_at   timestamptz,
    last_job_id    uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- When a worker last upserted it from code (NULL for API schedules): a code
    -- schedule no worker has synced for long was probably removed from the code.
    synced_at      timestamptz,
    CHECK ((cron IS NULL) <> (every_seconds IS NULL))
);

-- The scheduler's probe and lock read the due rows of this index only.
CREATE INDEX schedules_due_idx ON {schema}.schedules (next_fire_at) WHERE NOT paused;

-- Exactly one job per (schedule, fire time), whatever number of processes
-- fire: the primary key refuses a second row for a fire time, and the job is
-- inserted only for a row this transaction inserted. Pruned with the jobs
-- (JOBQ_RETENTION).
CREATE TABLE {schema}.schedule_fires (
    schedule     text        NOT NULL,
    fire_at      timestamptz NOT NULL,
    job_id       uuid        NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, fire_at)
);

CREATE INDEX schedule_fires_enqueued_idx ON {schema}.schedule_fires (enqueued_at);
