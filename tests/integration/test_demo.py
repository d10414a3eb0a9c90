"""`jitbot demo` plays the whole flow against the real processes and prints it without leaking the secret."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest

from jitbot.ops.demo import play
from jitbot.ops.demo_transcript import credentials_in
from jitbot.testing.stack import Stack


@pytest.mark.timeout(180)
def test_play_whole_flow_prints_conversation_and_masks_secret(tmp_path: Path) -> None:
    stacks: list[Stack] = []
    out = StringIO()

    code = play(home=tmp_path / "demo", grant="10s", out=out, stack_hook=stacks.append)

    transcript = out.getvalue()
    assert code == 0, transcript
    assert "#C0APPROVALS   jitbot: Access request" in transcript
    assert "[Approve] [Deny]" in transcript
    assert "(only @U0EVE sees): Only the approvers of `prod-db`" in transcript
    assert "(only @U0ALICE sees): You can't approve or deny your own request." in transcript
    assert "the credentials work: arn:aws:sts::123456789012:assumed-role/jit-prod-db/jit-r-" in transcript.lower()
    assert "credentials were removed" in transcript
    dms = [credentials_in(call.params) for call in stacks[0].slack.calls_to("chat.postMessage")]
    secret = next(fields["AWS_SECRET_ACCESS_KEY"] for fields in dms if fields)
    assert secret not in transcript
    assert f"AWS_SECRET_ACCESS_KEY={secret[:4]}…" in transcript
