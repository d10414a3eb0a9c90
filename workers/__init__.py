"""RQ entry points for jitbot: job functions by dotted path, and the worker process."""
