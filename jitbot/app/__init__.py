"""The use cases: asking and deciding (requesting, deciding, guard, people), granting, renewing and ending access and
its timers (lifecycle, sweeper), the drift scan (drift). They change state through the store and hand cloud and Slack
work to jobs; what they still import of Slack and Redis is listed in tests/unit/test_architecture.py, to be removed."""
