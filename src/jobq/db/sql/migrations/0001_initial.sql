-- jobq schema, version 1. {schema} is replaced by the quoted schema name.
-- Forward-only and additive within a major version (SPEC §10).

CREATE TABLE {schema}.jobs (
    id                uuid        PRIMARY KEY,          -- UUIDv7, made by jobq
    queue             text        NOT NULL,
    kind              text        NOT NULL,
    payload           jsonb       NOT NULL,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status            text        NOT NULL CHECK (status IN
                        ('queued', 'running', 'retrying', 'succeeded', 'failed_permanent', 'cancelled')),
    priority          smallint    NOT NULL DEFAULT 0,
    attempts          integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
    run_at            timestamptz NOT NULL,
    idempotency_key   text,
    -- sha256 of the request as the client sent it (SPEC §3), to tell a replay
    -- from a reuse of the key with a different request.
    request_hash      bytea,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    last_error        text,
    locked_by         text,
    lease_expires_at  timestamptz,
    -- The previous retry delay, the state of decorrelated jitter (SPEC §4).
    retry_delay_ms    bigint,
    -- Attempts over the job's whole life, numbering the history; unlike
    -- `attempts` it is not reset by a retry by hand.
    attempt_seq       integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz
) WITH (
    -- Every job is updated several times (claim, heartbeat, complete). Leaving
    -- 30% of each page free lets those updates stay on the page as HOT updates,
    -- which skip index maintenance, as long as no indexed column changes.
    fillfactor = 70,
    -- A queue table churns: the default scale factor (20% of the table dead
    -- before vacuum) lets dead tuples pile up under the claim's index scan.
    -- Vacuum after 1% (plus a floor) and analyze after 2%.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05
);

-- The claim's index: only runnable rows, in the claim's ORDER BY, so the claim
-- reads the first rows of the index and stops. Finished jobs never enter it.
CREATE INDEX jobs_runnable_idx ON {schema}.jobs (priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying');

-- Running jobs by holder, for the rescuer and the heartbeat. Deliberately not
-- on lease_expires_at: the heartbeat changes only that column, and leaving it
-- out of every index keeps each lease renewal a HOT update.
CREATE INDEX jobs_running_idx ON {schema}.jobs (locked_by)
    WHERE status = 'running';

-- The pruner's index: finished jobs by finish time.
CREATE INDEX jobs_finished_idx ON {schema}.jobs (finished_at)
    WHERE finished_at IS NOT NULL;

-- Listing by queue / kind, newest first.
CREATE INDEX jobs_queue_id_idx ON {schema}.jobs (queue, id DESC);
CREATE INDEX jobs_kind_id_idx ON {schema}.jobs (kind, id DESC);

-- One job per idempotency key for as long as the job row exists (SPEC §3).
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON {schema}.jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The attempt history. A separate table rather than an array on the job row:
-- a row is written once, when an attempt ends, so the claim writes nothing
-- here and the job row stays narrow enough for HOT updates. No foreign key:
-- its check would take a lock on the job row at every completion; deletes of
-- jobs remove their history in the same statement instead.
CREATE TABLE {schema}.job_attempts (
    job_id       uuid        NOT NULL,
    seq          integer     NOT NULL,
    worker_id    text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    outcome      text        NOT NULL CHECK (outcome IN
                   ('succeeded', 'failed', 'cancelled', 'lease_expired', 'interrupted')),
    error        text,
    PRIMARY KEY (job_id, seq)
);

-- Pause state. A queue exists in the API when it has a job or a row here.
CREATE TABLE {schema}.queues (
    name        text        PRIMARY KEY,
    paused      boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Live worker processes, renewed by heartbeat, removed on a clean stop.
CREATE TABLE {schema}.workers (
    id                 text        PRIMARY KEY,
    host               text        NOT NULL,
    pid                integer     NOT NULL,
    queues             text[],                 -- NULL: every queue
    concurrency        integer     NOT NULL,
    in_flight          integer     NOT NULL DEFAULT 0,
    version            text        NOT NULL,
    started_at         timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- Leader election for maintenance through a lease row, not a session advisory
-- lock, which breaks behind transaction-mode poolers (PgBouncer).
CREATE TABLE {schema}.leaders (
    name        text        PRIMARY KEY,
    holder      text        NOT NULL,
    expires_at  timestamptz NOT NULL
);
