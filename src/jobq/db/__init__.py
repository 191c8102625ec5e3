"""The database layer: every statement jobq sends to PostgreSQL, and how it connects.

What lives here: `pool` (resolving the URL, from DATABASE_URL or the embedded
server, and opening pools and session connections), `loader` (reading the
bundled SQL files and quoting the schema name, once), `queries` (one typed
method per named block of `sql/queries.sql`: every statement of the queue, the
pool's init included; `jobq bench` keeps its own in `sql/bench.sql`, and the
embedded server's password is set by `embedded_access` through PostgreSQL's
single-user mode), `records` (the rows those methods take and give), `migrate`
(the numbered files of `sql/migrations/`, applied under a lock), `outcomes` (an
outcome turned into the fenced row that persists it; the run-once rescue and
prune steps), `firing` (schedules turned into rows; the run-once fire step that
keeps one job per fire time, the code-schedule upsert and the fire pruner) and
`embedded`/`embedded_access` (the embedded PostgreSQL and the rules it runs
under). It may import only the pure modules below it (`jobq.types`,
`jobq.config`, `jobq.errors`, `jobq.ids`, `jobq.states`, `jobq.retry`,
`jobq.job_request`, `jobq.schedules`) and asyncpg; never the client, the
worker, the API or the CLI.

One route to the database for each side, as River's services take its driver:
the front ends (library, HTTP API, CLI) go through `jobq.client.Client`, which
validates and applies the state rules; worker services (producer, completer,
heartbeat, listener, maintenance) call `Queries` on the pool themselves and
never a `Client` method. That was the smaller change (most worker calls
already went to `Queries`; four went through `Client` wrappers, which are
gone), and it keeps the client free of the worker's claim/finish protocol.
"""
