"""moto's server in a process of its own, refusing what AWS refuses (aws_limits): a test can freeze it with SIGSTOP
and get what a hung cloud endpoint is — the kernel still accepts connections, and nothing ever answers. With
`limits` (the fields of providers.limits.Limits, as JSON) IAM and STS answer with AWS's latency and throttling.

    python -m jitbot.testing.moto_process <port> [limits]
"""

from __future__ import annotations

import json
import sys

from moto.server import main as serve

from jitbot.providers.limits import Limits, Throttle
from jitbot.testing import aws_limits


def main(argv: list[str]) -> None:
    aws_limits.enforce()
    if len(argv) > 1:
        aws_limits.throttle(Throttle(Limits(**json.loads(argv[1]))))
    serve(["--host", "127.0.0.1", "--port", argv[0]])


if __name__ == "__main__":
    main(sys.argv[1:])
