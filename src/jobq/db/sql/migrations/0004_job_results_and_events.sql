-- jobq schema, version 4: a job's result, and a notification of every change
-- of a job's state. {schema} is replaced by the quoted schema name. Additive
-- (SPEC §10).

-- The handler's return value (any JSON value, at most JOBQ_MAX_RESULT_BYTES
-- serialised), written with the success that produced it; NULL when it
-- returned None, and for every job that has not succeeded.
ALTER TABLE {schema}.jobs ADD COLUMN result jsonb;

-- Every statement that changes the state of jobs (the worker's finish-and-claim,
-- the rescuer, cancel, retry, anything run by hand) tells the channel
-- `<schema>.events` which jobs changed, so that waiters (`App.wait`,
-- `Prefer: wait`, the SSE stream) are woken by notification instead of polling
-- their rows. One statement-level trigger is the one place that covers every
-- path, including ones written later. The payload is the ids, comma-separated,
-- at most 200 to a notification (37 bytes each: under NOTIFY's 8,000-byte
-- limit). Listeners re-read the jobs they watch, so the payload carries no
-- state; NOTIFY drops a duplicate payload within a transaction, which loses
-- nothing here.
--
-- A change of `cancel_requested` notifies too (an event for the SSE stream).
-- A later version may widen the condition (progress, say) by replacing the
-- function; the heartbeat, which changes neither, fires nothing here (migration
-- 0005's progress writes are announced by the heartbeat's own statement).
CREATE FUNCTION {schema}.jobs_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.events', string_agg(id::text, ','))
    FROM (
        SELECT n.id, (row_number() OVER () - 1) / 200 AS chunk
        FROM jobq_new_rows AS n
        JOIN jobq_old_rows AS o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status
           OR n.cancel_requested IS DISTINCT FROM o.cancel_requested
    ) AS changed
    GROUP BY chunk;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_events
AFTER UPDATE ON {schema}.jobs
REFERENCING OLD TABLE AS jobq_old_rows NEW TABLE AS jobq_new_rows
FOR EACH STATEMENT EXECUTE FUNCTION {schema}.jobs_notify_events();
