"""The jobs layer: the job database, the queue and the workers that run the engine.

``store`` (engine, sessions, migrations) · ``models`` (tables, ``JobStatus``) · ``service``
(jobs, events, checkpoints) · ``files`` · ``projects`` (API keys) · ``queue`` (claim, lease,
requeue) · ``worker`` (the loop, a child process per training run) · ``run_job`` (that child)
· ``reporting`` (the training callback writing events) · ``fakes`` (in-memory queue, fake
engine). It imports the engine, never the server.
"""
