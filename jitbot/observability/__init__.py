"""What jitbot says about itself: JSON logs with secrets scrubbed (logs), Prometheus metrics read from Redis
(metrics, metrics_collector), the /livez, /readyz and /healthz probes (health), and how an outage is told (outage)."""
