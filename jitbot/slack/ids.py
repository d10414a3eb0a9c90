"""Block Kit action ids, shared by the views that draw buttons and the listeners that answer them."""

APPROVE = "jitbot_approve"
DENY = "jitbot_deny"
