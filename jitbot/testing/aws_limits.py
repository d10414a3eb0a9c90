"""moto refuses what AWS refuses: the IAM, STS and Identity Center behaviour jitbot depends on, patched into moto.

moto accepts an inline-policy write of any size, a chained AssumeRole of any length and a session policy of any
size, and settles Identity Center assignments at once. Real AWS does not (sources beside each check); a test
double that accepts them lets a provider pass tests that production would fail. `enforce()` is idempotent and
applies to `mock_aws` and `ThreadedMotoServer` alike (both serve from this process's backends).
moto also answers at once and never throttles. `throttle(Throttle(Limits(...)))` (benchmarks, throttling tests)
gives IAM and STS calls a latency and IAM writes on a role a rate, a write past it answered as IAM answers;
`throttle(None)` takes them off again, as they are by default.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from moto.core import errors as moto_errors
from moto.core.common_types import TYPE_RESPONSE
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse
from moto.iam.exceptions import LimitExceededException, NotFoundException
from moto.iam.models import IAMBackend, iam_backends
from moto.iam.responses import IamResponse
from moto.ssoadmin.responses import SSOAdminResponse
from moto.sts.exceptions import STSClientError, STSValidationError
from moto.sts.responses import TokenResponse

from jitbot.providers.limits import Throttle

# IAM User Guide, "IAM and AWS STS quotas": "Role policy size cannot exceed 10,240 characters" — all inline
# policies of one role together, white space not counted. PutRolePolicy then fails with LimitExceeded
# (botocore iam model: PutRolePolicy errors include LimitExceededException, code LimitExceeded, HTTP 409).
ROLE_INLINE_QUOTA = 10_240
# botocore sts model, AssumeRoleRequest.DurationSeconds: "if you assume a role using role chaining and provide a
# DurationSeconds parameter value greater than one hour, the operation fails"; above the role's
# MaxSessionDuration it fails too.
CHAINED_MAX_SECONDS = 3_600
# botocore sts model, AssumeRoleRequest.Policy: "The plaintext that you use for both inline and managed session
# policies can't exceed 2,048 characters", and the packed form is checked too (PackedPolicyTooLarge). The
# plaintext limit is what is checked here; AWS's packing is not public.
SESSION_POLICY_MAX = 2_048
# IAM and STS throttle an account's calls, and answer one past the rate "Throttling: Rate exceeded, status code: 400"
# (AWS re:Post Knowledge Center, "How do I resolve API throttling or 'Rate exceeded' errors for IAM and AWS STS?",
# repost.aws/knowledge-center/iam-sts-throttling-error); botocore's retry model reads it so (botocore/data/_retry.json,
# definition "throttling": service_error_code Throttling, http_status_code 400). AWS publishes no rate for IAM's
# writes: "IAM and AWS STS independently implement a token bucket algorithm ... For each IAM API, a number of token
# buckets might apply" (AWS Support, quoted in hashicorp/terraform-provider-aws#44853). The bucket here is a role's,
# so that a test can throttle one hot role and not the others.
THROTTLING = "Throttling"
IAM_READS = ("Get", "List")  # IAM actions that change nothing; any other that names a RoleName writes that role

# sso-admin API reference, CreateAccountAssignment / DeleteAccountAssignment: "As part of a successful ...
# call, the specified permission set will automatically be provisioned ... this is an asynchronous operation":
# the answer's Status is IN_PROGRESS, and DescribeAccountAssignment{Creation,Deletion}Status is to be polled
# (botocore sso-admin model: StatusValues IN_PROGRESS | FAILED | SUCCEEDED). Here: IN_PROGRESS when asked and on
# the first poll, SUCCEEDED from the second.
_polled: dict[str, int] = {}
_original: dict[str, Any] = {}
iam_writes = Counter[str]()  # role name → inline-policy writes (put and delete) it received: what benchmarks count
_unlimited: dict[type[BaseResponse], Callable[[BaseResponse], TYPE_RESPONSE]] = {}  # call_action before `throttle`
_throttle: Throttle | None = None


class Throttled(ServiceException):
    code = THROTTLING
    message = "Rate exceeded"


def policy_size(document: str) -> int:
    """How IAM counts a policy against a quota: its characters with white space left out."""
    return len(json.dumps(json.loads(document), separators=(",", ":")))


def _put_role_policy(self: IAMBackend, role_name: str, policy_name: str, policy_json: str) -> None:
    role = self.get_role(role_name)
    others = sum(policy_size(doc) for name, doc in role.policies.items() if name != policy_name)
    if others + policy_size(policy_json) > ROLE_INLINE_QUOTA:
        raise LimitExceededException(f"Maximum policy size of {ROLE_INLINE_QUOTA} bytes exceeded for role {role_name}")
    _original["put_role_policy"](self, role_name, policy_name, policy_json)
    iam_writes[role_name] += 1


def _delete_role_policy(self: IAMBackend, role_name: str, policy_name: str) -> None:
    _original["delete_role_policy"](self, role_name, policy_name)
    iam_writes[role_name] += 1


def _assume_role(self: TokenResponse) -> Any:
    duration = self._get_int_param("DurationSeconds", 3600)
    policy = self._get_param("Policy")
    if policy and len(policy) > SESSION_POLICY_MAX:
        raise STSClientError("PackedPolicyTooLarge", "Packed size of the session policy exceeds the limit.")
    caller = self.backend.get_assumed_role_from_access_key(self.get_access_key())
    if caller is not None and duration > CHAINED_MAX_SECONDS:
        raise STSValidationError(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
        )
    role = _role_by_arn(self, self._get_param("RoleArn"))
    if role is not None and duration > int(role.max_session_duration or 3600):
        raise STSValidationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
    return _original["assume_role"](self)


def _role_by_arn(response: TokenResponse, arn: str) -> Any:
    """The role, or None for another account's (moto cannot know it). A missing role of moto's own account is
    refused as AWS refuses it: AccessDenied, not authorized to perform sts:AssumeRole on the resource."""
    if f":{response.current_account}:" not in arn:
        return None
    try:
        return iam_backends[response.current_account][response.partition].get_role_by_arn(arn)
    except NotFoundException:
        raise STSClientError("AccessDenied", f"not authorized to perform: sts:AssumeRole on resource: {arn}") from None


def _in_progress(operation: str, key: str) -> Any:
    def answer(self: SSOAdminResponse) -> str:
        body = json.loads(_original[operation](self))
        status = body[key]
        if operation.startswith("describe"):
            _polled[status["RequestId"]] = _polled.get(status["RequestId"], 0) + 1
            status["Status"] = "IN_PROGRESS" if _polled[status["RequestId"]] < 2 else "SUCCEEDED"
        else:
            status["Status"] = "IN_PROGRESS"
        return json.dumps(body)

    return answer


SETTLING = {
    "create_account_assignment": "AccountAssignmentCreationStatus",
    "delete_account_assignment": "AccountAssignmentDeletionStatus",
    "describe_account_assignment_creation_status": "AccountAssignmentCreationStatus",
    "describe_account_assignment_deletion_status": "AccountAssignmentDeletionStatus",
}


def enforce() -> None:
    """Patch moto's IAM and STS to refuse what AWS refuses; safe to call more than once."""
    if _original:
        return
    _original["put_role_policy"] = IAMBackend.put_role_policy
    _original["delete_role_policy"] = IAMBackend.delete_role_policy
    IAMBackend.delete_role_policy = _delete_role_policy  # type: ignore[method-assign]
    _original["assume_role"] = TokenResponse.assume_role
    IAMBackend.put_role_policy = _put_role_policy  # type: ignore[method-assign]
    TokenResponse.assume_role = _assume_role  # type: ignore[method-assign]
    for operation, key in SETTLING.items():
        _original[operation] = getattr(SSOAdminResponse, operation)
        setattr(SSOAdminResponse, operation, _in_progress(operation, key))


def throttle(limits: Throttle | None) -> None:
    """IAM and STS, as moto serves them in this process (mock_aws, ThreadedMotoServer, moto_process), take `limits`'
    latency, and an IAM write on a role a token from that role's bucket; None: neither. Hooked where moto serves
    each call, so that a refusal is rendered as moto renders IAM's own errors (the Query API's ErrorResponse XML)."""
    global _throttle
    _throttle = limits
    if _unlimited:
        return
    # AWS answers Throttling from every Query API, though no service model lists it as an error: moto is told it is
    # common, as it is told of ValidationError, so that it renders it without warning
    moto_errors.COMMON_ERROR_CODES.append(THROTTLING)
    for response in (IamResponse, TokenResponse):
        _unlimited[response] = response.call_action
        response.call_action = _limited  # type: ignore[method-assign, assignment]


def _limited(response: BaseResponse) -> TYPE_RESPONSE:
    """moto's call_action under the throttle: the call's latency first; an IAM write on a role whose bucket is empty
    answered Throttling instead of done."""
    limits = _throttle
    if limits is not None:
        limits.wait()
        role = _role_written(response)
        if role is not None and limits.take(f"{response.current_account}/{role}") is not None:
            return response.serialized(ActionResult(Throttled()))
    return _unlimited[type(response)](response)


def _role_written(response: BaseResponse) -> str | None:
    """The role an IAM call writes (PutRolePolicy, DeleteRolePolicy, AttachRolePolicy, TagRole…), else None."""
    if response.service_name != "iam" or response._get_action().startswith(IAM_READS):
        return None
    role = response._get_param("RoleName")
    return str(role) if role else None
