"""Block Kit action and view ids, shared by the views that draw them and the listeners that answer them."""

APPROVE = "jitbot_approve"
DENY = "jitbot_deny"
CANCEL = "jitbot_cancel"
END_NOW = "jitbot_end_now"
EXTEND = "jitbot_extend"
ACKNOWLEDGE = "jitbot_review_ack"
FLAG = "jitbot_review_flag"
MORE = "jitbot_list_more"

REQUEST_FORM = "jitbot_request_form"
EXTEND_FORM = "jitbot_extend_form"
DENY_FORM = "jitbot_deny_form"

# inputs of the forms: (block id, action id) pairs, read back from view.state.values
RESOURCE_INPUT = "resource"
DURATION_INPUT = "duration"
REASON_INPUT = "reason"
