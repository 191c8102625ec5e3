-- jobq schema, version 14: lists of unfinished jobs by state on a big table.
-- {schema} is replaced by the quoted schema name. Additive (SPEC §10). See
-- docs/DESIGN.md, "Big tables".

-- The dashboard's and the API's state filters for jobs not finished yet
-- (`?status=queued&queue=reports`, `?status=retrying`, `?status=running`):
-- without this, a filter that few or none of the rows match read a queue's
-- whole history through jobs_queue_id_idx, or the whole table through the
-- primary key, looking for a page (measured on 10M finished and 1M future
-- jobs: 3.1 s for a queue without queued jobs, 0.8 s for `retrying` when none
-- retry). Only jobs not finished are in it, so it stays as small as the
-- backlog; each job enters it at its enqueue and its claim, and leaves when it
-- finishes (its last entry dies with the row version and is vacuumed).
--
-- State first: `status = x AND queue = y` reads its rows in id order, and
-- `status = x` alone reads all of that state's rows and sorts them, which is
-- quick for the states that few jobs are in (retrying, running); for the one
-- that many may be in (queued) the primary key walked backwards finds a page
-- at once, and the planner, which sees the state (job_list_plan_per_call),
-- takes that instead.
CREATE INDEX jobs_unfinished_status_queue_id_idx ON {schema}.jobs (status, queue, id DESC)
    WHERE status IN ('queued', 'retrying', 'running');

-- What states each queue's jobs are in, for the planner: without it, it takes
-- the queue and the state to be independent, expects a filter such as
-- `queue = 'reports' AND status IN ('queued', 'running')` to match a share of
-- the queue's rows as large as the share of those states in the whole table,
-- and walks the queue's history by id for a page that is not there (3 s on a
-- queue of 1M finished jobs). With the combinations counted it reads this
-- index instead. Kept by ANALYZE, as the columns' own statistics are.
CREATE STATISTICS {schema}.jobs_queue_status_stats (mcv) ON queue, status FROM {schema}.jobs;
