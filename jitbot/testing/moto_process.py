"""moto's server in a process of its own, refusing what AWS refuses (aws_limits): a test can freeze it with SIGSTOP
and get what a hung cloud endpoint is — the kernel still accepts connections, and nothing ever answers.

    python -m jitbot.testing.moto_process <port>
"""

from __future__ import annotations

import sys

from moto.server import main as serve

from jitbot.testing import aws_limits


def main(argv: list[str]) -> None:
    aws_limits.enforce()
    serve(["--host", "127.0.0.1", "--port", argv[0]])


if __name__ == "__main__":
    main(sys.argv[1:])
