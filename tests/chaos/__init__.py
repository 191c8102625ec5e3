"""The reliability suite (issue 15): real `jobq` processes, injected faults, checked invariants.

- ``app``: the handlers the suite's workers run; each attempt leaves a row in a side table.
- ``cluster``: a throwaway PostgreSQL 15 cluster (initdb/pg_ctl), to restart and kill freely.
- ``procs``: `jobq worker` / `jobq serve --no-workers` subprocesses, optionally in a namespace.
- ``load``: the HTTP enqueuer, which records every answer (the "accepted" ledger).
- ``invariants``: the checker, reading the database and the side table.
- ``netns``: network namespaces, veth links, iptables faults and a delaying TCP proxy.
- ``scenario``: the pieces assembled: a running system to break and to check.

``test_quick.py`` runs in ``make test``; the ``chaos``-marked modules run in ``make chaos``.
docs/RELIABILITY.md has the figures and the commands.
"""
