"""The worker runtime (SPEC §5): fetch → run → complete, as River and Oban split it.

Modules, each one part:
- runtime      Worker: wires the parts together; run(), request_stop(), id
- producer     claims into free slots; woken by NOTIFY, jittered polling as fallback
- runner       runs each job's handler in a task, settles it to one Outcome; no SQL
- completer    writes outcomes in batches, one fenced statement per batch; events
- heartbeat    renews every held lease in one statement; delivers cancels; finds lost jobs
- listener     LISTEN on its own connection; probes delivery; reconnects by itself
- maintenance  leader (lease row) runs the rescuer, pruner and worker-row cleanup
- scheduler    every worker fires due schedules (no leader: the database keeps it
               exactly once per fire time); upserts the app's @app.periodic at start
- process      one worker process: loop, handler threads, signals
- supervisor   `jobq worker`: one process, or N supervised children
- service      PeriodicService: the start/stop base of heartbeat, maintenance, scheduler
- options      WorkerOptions: concurrency, queues, burst, processes, metrics; defaults
- config       WorkerConfig (options + settings) and the tuning constants
- backoff      retrying database errors in every loop

Events emitted (jobq.events): JobClaimed, InFlightChanged, JobFinished, JobsRescued,
SchedulesFired, ScheduleRunsSkipped, JobsEnqueued (the scheduler's jobs).
"""

from jobq.worker.runtime import Worker

__all__ = ["Worker"]
