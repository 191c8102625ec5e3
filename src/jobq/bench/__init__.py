"""`jobq bench`: enqueue, drain and pickup-latency measurements of jobq itself.

- `jobq.bench.app`: the app its workers run (`noop`, `sleep`, `probe`);
- `jobq.bench.store`: its SQL (`db/sql/bench.sql`) in a scratch schema of its own;
- `jobq.bench.workers`: worker processes started the way users start them;
- `jobq.bench.runner`: the phases and the self-check;
- `jobq.bench.report`: percentiles, the summary table and the JSON line;
- `jobq.cli.bench` (not here): the `jobq bench` command, so this package imports no front end.

Kept import-light: worker processes import `jobq.bench.app` and nothing else.
"""
