-- jobq schema, version 7: jobs that wait for other jobs (dependencies,
-- workflows, batches). {schema} is replaced by the quoted schema name.
-- Additive (SPEC §10): a new state, two columns, three tables, one function.

-- `pending`: waiting for dependencies. Not runnable (not in jobs_runnable_idx).
ALTER TABLE {schema}.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE {schema}.jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
    ('pending', 'queued', 'running', 'retrying', 'succeeded', 'failed_permanent', 'cancelled'));

-- The dependencies of a pending job not yet ended (NULL: the job never had any).
ALTER TABLE {schema}.jobs ADD COLUMN pending_dependencies integer;
-- Whether some job depends on this one: the finish statement resolves
-- dependencies only for these rows, so a job nobody waits for pays nothing.
-- In no index, so setting it keeps the update HOT.
ALTER TABLE {schema}.jobs ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
-- How many of its dependencies ended failed_permanent or cancelled: a batch's
-- on_failure callback runs only if one did. On the row, so the row lock that
-- serialises the count serialises this too.
ALTER TABLE {schema}.jobs ADD COLUMN failed_dependencies integer;

-- One row per edge. `resolved` turns true exactly once, when the dependency
-- ends (or at insert when it had already ended): under the edge's row lock, so
-- a dependency that ends twice (retried by hand) never counts twice.
-- `on_failure`: what a failed_permanent or cancelled dependency does to the
-- dependent: 'cancel' it, or count as done and let it 'run'; 'failure_only'
-- (a batch's on_failure callback) runs it only if some dependency failed,
-- and cancels it when every one succeeded.
CREATE TABLE {schema}.job_dependencies (
    dependency_id  uuid    NOT NULL,
    dependent_id   uuid    NOT NULL,
    on_failure     text    NOT NULL DEFAULT 'cancel' CHECK (on_failure IN ('cancel', 'run', 'failure_only')),
    resolved       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (dependency_id, dependent_id)
);
-- A dependent's dependencies (its results, pruning).
CREATE INDEX job_dependencies_dependent_idx ON {schema}.job_dependencies (dependent_id);

-- A workflow: a graph of named jobs submitted in one transaction.
CREATE TABLE {schema}.workflows (
    id          uuid        PRIMARY KEY,
    name        text,
    node_count  integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each node of a workflow and its job (a batch's members and callbacks too:
-- a batch is a workflow whose callbacks depend on every member).
CREATE TABLE {schema}.workflow_nodes (
    workflow_id  uuid NOT NULL,
    name         text NOT NULL,
    job_id       uuid NOT NULL,
    PRIMARY KEY (workflow_id, name)
);
CREATE UNIQUE INDEX workflow_nodes_job_idx ON {schema}.workflow_nodes (job_id);

-- Resolve the edges out of the jobs `ids` that just ended with `statuses`:
-- each dependent loses one pending dependency per edge resolved; the one that
-- reaches 0 becomes `queued` (one NOTIFY per queue on `channel`); a failed or
-- cancelled dependency cancels a dependent whose edge says so, with a reason
-- naming it, and that cancel is resolved in turn (the loop). Called from the
-- statements that end jobs (job_finish_and_claim, job_cancel), in their
-- transaction. Two dependencies ending at once on two workers: the second
-- UPDATE of the dependent waits for the first's row lock and then re-reads the
-- row (READ COMMITTED), so exactly one of them brings the counter to 0.
-- Answers the number of dependents it changed.
CREATE FUNCTION {schema}.jobq_resolve_dependencies(ids uuid[], statuses text[], channel text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer := 0;
    step integer;
BEGIN
    WHILE cardinality(ids) > 0 LOOP
        -- Every table is reached by key through `= ANY(array)`: joined to the
        -- input instead, the generic plan of a just-filled table was a hash
        -- join over a sequential scan of every edge and every job (8 ms a call
        -- with 10,000 jobs, against ~0.3 ms by key).
        WITH edges AS (
            UPDATE {schema}.job_dependencies AS d
            SET resolved = true
            WHERE d.dependency_id = ANY(ids) AND NOT d.resolved
            RETURNING d.dependent_id, d.dependency_id, d.on_failure,
                      statuses[array_position(ids, d.dependency_id)] AS status
        ),
        per_dependent AS (
            SELECT dependent_id, count(*)::integer AS n,
                   -- the dependency that cancels it, if any (the smallest id: deterministic)
                   min(dependency_id::text) FILTER (
                       WHERE status <> 'succeeded' AND on_failure = 'cancel') AS culprit,
                   count(*) FILTER (WHERE status <> 'succeeded')::integer AS failed,
                   bool_or(on_failure = 'failure_only') AS failure_only
            FROM edges GROUP BY dependent_id
        ),
        written AS (
            UPDATE {schema}.jobs AS j
            SET pending_dependencies = j.pending_dependencies - p.n,
                failed_dependencies = coalesce(j.failed_dependencies, 0) + p.failed,
                status = CASE WHEN p.culprit IS NOT NULL THEN 'cancelled'
                              WHEN j.pending_dependencies - p.n > 0 THEN 'pending'
                              WHEN p.failure_only
                                   AND coalesce(j.failed_dependencies, 0) + p.failed = 0
                              THEN 'cancelled'
                              ELSE 'queued' END,
                last_error = CASE WHEN p.culprit IS NULL AND p.failure_only
                                       AND j.pending_dependencies - p.n <= 0
                                       AND coalesce(j.failed_dependencies, 0) + p.failed = 0
                                  THEN 'every dependency succeeded (a callback for failures)'
                                  WHEN p.culprit IS NOT NULL
                                  THEN format('dependency %s%s ended %s', p.culprit,
                                              coalesce(' (' || (
                                                  SELECT w.name FROM {schema}.workflow_nodes AS w
                                                  WHERE w.job_id = p.culprit::uuid) || ')', ''),
                                              statuses[array_position(ids, p.culprit::uuid)])
                                  ELSE j.last_error END,
                finished_at = CASE WHEN p.culprit IS NOT NULL
                                        OR (p.failure_only AND j.pending_dependencies - p.n <= 0
                                            AND coalesce(j.failed_dependencies, 0) + p.failed = 0)
                                   THEN now() ELSE j.finished_at END,
                updated_at = now()
            FROM per_dependent AS p
            WHERE j.id = p.dependent_id
              AND j.id = ANY(ARRAY(SELECT dependent_id FROM per_dependent))
              AND j.status = 'pending'
            RETURNING j.id, j.status, j.queue, j.run_at, j.has_dependents
        ),
        notified AS (
            SELECT pg_notify(channel, q.queue)
            FROM (SELECT DISTINCT queue FROM written
                  WHERE status = 'queued' AND run_at <= now()) AS q
        )
        SELECT coalesce(array_agg(id) FILTER (WHERE status = 'cancelled' AND has_dependents),
                        '{}'),
               coalesce(array_agg(status) FILTER (WHERE status = 'cancelled' AND has_dependents),
                        '{}'),
               count(*) + 0 * (SELECT count(*) FROM notified)
        INTO ids, statuses, step
        FROM written;
        changed := changed + step;
    END LOOP;
    RETURN changed;
END;
$$;
