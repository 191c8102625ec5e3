-- jobq schema, version 16: a change of a job's state is notified only when
-- someone watches that job. {schema} is replaced by the quoted schema name.
--
-- The events trigger (migration 0004) notified every change of every job, so
-- every claim and every finish ran NOTIFY. PostgreSQL serialises the commits
-- of transactions that NOTIFY (one lock on the notification queue, held through
-- the commit's WAL flush): two worker processes finishing jobs committed one
-- after the other. Measured (bench/drain_cpu.py, 2 processes x 10, 20,000
-- no-op jobs): 7,000-7,200 jobs/s with the trigger notifying, 8,200-8,300
-- without it, the CPU per job unchanged.
--
-- A wait hub (jobq.waiting: App.wait and result, Prefer: wait, the SSE stream)
-- now records the jobs it watches here, before its watchers first read them,
-- and refreshes the records while they watch; the trigger and the heartbeat's
-- progress notification notify only jobs with a live record. A change that
-- commits between a hub's record and its watcher's first read is seen by the
-- hub's periodic re-read (jobq.waiting.SAFETY_POLL_SECONDS).
--
-- A hub of an earlier release records nothing: its waiters see the end of a
-- job only when they time out, so upgrade the processes that serve waiters
-- (jobq serve, an app that waits) with the workers.
CREATE TABLE {schema}.job_watches (
    job_id     uuid        NOT NULL,
    hub        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (job_id, hub)
);

CREATE OR REPLACE FUNCTION {schema}.jobs_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.events', string_agg(id::text, ','))
    FROM (
        SELECT n.id, (row_number() OVER () - 1) / 200 AS chunk
        FROM jobq_new_rows AS n
        JOIN jobq_old_rows AS o ON o.id = n.id
        WHERE (n.status IS DISTINCT FROM o.status
               OR n.cancel_requested IS DISTINCT FROM o.cancel_requested)
          AND EXISTS (SELECT 1 FROM {schema}.job_watches AS w
                      WHERE w.job_id = n.id AND w.expires_at > now())
    ) AS changed
    GROUP BY chunk;
    RETURN NULL;
END
$$;
