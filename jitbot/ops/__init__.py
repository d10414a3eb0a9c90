"""What an operator runs: the `jitbot` command (cli), `jitbot check`, the audit trail's verify and export
(audit_trail), the access review (report*), and `jitbot demo`, the only product code that uses jitbot.testing."""
