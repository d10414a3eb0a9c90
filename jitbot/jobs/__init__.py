"""Background jobs, named once (names.JobName) and run from one table (registry.JOBS): the enqueuer
(jitbot.tasks), the worker (entry, the functions RQ imports) and the tests all go through that table."""
