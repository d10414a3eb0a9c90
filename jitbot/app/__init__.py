"""The use cases: asking and deciding (requesting, deciding, guard, people), granting, renewing and ending access
(lifecycle) and its timers (reconciler), the drift scan (drift). They reach people, workers and what is kept only
through their ports (ports, repository): no Slack, Redis, RQ or cloud SDK here (tests/unit/test_architecture.py)."""
