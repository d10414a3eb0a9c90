"""The pure core: what a request is and how it moves (domain, events, review), what the catalog and a command say
(catalog, commands, durations), who may ask and decide (policy, eligibility). Times come in as arguments; nothing
here does I/O or imports anything outside the core but the providers' pure settings (tests/unit/test_architecture)."""
