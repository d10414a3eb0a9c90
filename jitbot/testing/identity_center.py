"""AWS IAM Identity Center in the Stack's moto, under the names the catalog gives it.

The catalog holds what an admin copies from the AWS console: the instance ARN and a permission set ARN of the
form `arn:aws:sso:::permissionSet/ssoins-…/ps-…` (botocore sso-admin model, shape PermissionSetArn: pattern
`arn:aws(-[a-z]{1,5}){0,3}:sso:::permissionSet/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}`). moto gives its
one instance per region a random ARN and names permission sets `…:instance/ssoins-…/ps-…`, a form AWS does not use
and the catalog refuses. So moto takes the catalog's names: its instance the catalog's ARN (and identity store id,
when the catalog names one), the permission set created here the catalog's ARN. Everything else goes through boto3
against the moto server, as jitbot's own calls do. The moto server runs in this process (`ThreadedMotoServer`): its
backends are renamed here. What moto itself is made to refuse (assignments settling asynchronously) lives in
`aws_limits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jitbot.core.catalog import Resource
from jitbot.providers.aws_sso_settings import SsoSettings


@dataclass(frozen=True)
class IdentityCenter:
    """One `mode: sso` resource's Identity Center: add users, and see who holds the permission set."""

    sso: Any  # boto3 sso-admin client on the Stack's moto
    store: Any  # boto3 identitystore client on the Stack's moto
    instance_arn: str
    store_id: str
    permission_set_arn: str
    account_id: str

    def add_user(self, email: str, user_name: str | None = None) -> str:
        """A user in the identity store with `email` as their work email (how jitbot finds them); their UserId."""
        name = user_name or email.partition("@")[0]
        created = self.store.create_user(
            IdentityStoreId=self.store_id,
            UserName=name,
            DisplayName=name,
            Name={"GivenName": name, "FamilyName": "Example"},
            Emails=[{"Value": email, "Type": "work", "Primary": True}],
        )
        return str(created["UserId"])

    def assign(self, principal_id: str) -> None:
        """A standing assignment of the permission set to someone (not jitbot's): it must outlive jitbot's.

        Identity Center holds one assignment per (principal, permission set, account): it has no id of its own, and
        DeleteAccountAssignment names it by exactly those (botocore sso-admin model, DeleteAccountAssignmentRequest).
        moto would store a second copy, so a user who already holds it is left as is."""
        if principal_id in self.assigned():
            return
        self.sso.create_account_assignment(
            InstanceArn=self.instance_arn,
            TargetId=self.account_id,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=self.permission_set_arn,
            PrincipalType="USER",
            PrincipalId=principal_id,
        )

    def assigned(self) -> list[str]:
        """The users holding the permission set on the account now (every page: AWS lists 100 at most per call,
        botocore sso-admin model, ListAccountAssignments MaxResults)."""
        pages = self.sso.get_paginator("list_account_assignments").paginate(
            InstanceArn=self.instance_arn, AccountId=self.account_id, PermissionSetArn=self.permission_set_arn
        )
        return sorted(
            item["PrincipalId"]
            for page in pages
            for item in page["AccountAssignments"]
            if item["PrincipalType"] == "USER"
        )


def seed_identity_center(sso: Any, store: Any, resource: Resource, session_duration: str = "PT1H") -> IdentityCenter:
    """The resource's Identity Center in moto (the clients' region must be the resource's); safe to repeat."""
    settings = resource.settings
    if not isinstance(settings, SsoSettings):
        raise ValueError(f"{resource.name} is not an Identity Center (`mode: sso`) resource")
    instance_arn, permission_set_arn = settings.instance_arn, settings.permission_set_arn
    store_id = _adopt_instance(sso, settings.region, instance_arn, settings.identity_store_id)
    try:
        sso.describe_permission_set(InstanceArn=instance_arn, PermissionSetArn=permission_set_arn)
    except sso.exceptions.ResourceNotFoundException:
        created = sso.create_permission_set(
            Name=resource.name, InstanceArn=instance_arn, SessionDuration=session_duration
        )["PermissionSet"]
        _rename_permission_set(settings.region, created["PermissionSetArn"], permission_set_arn)
    return IdentityCenter(sso, store, instance_arn, store_id, permission_set_arn, settings.account_id)


def _adopt_instance(sso: Any, region: str, instance_arn: str, store_id: str | None) -> str:
    """moto's instance in `region` takes the catalog's ARN (and store id); ListInstances then names its store."""
    sso.list_instances()  # moto makes the region's backend, and its one instance, on first use
    (instance,) = _backend(region).instances
    instance.instance_arn = instance_arn
    if store_id:
        instance.identity_store_id = store_id
    (listed,) = sso.list_instances()["Instances"]
    return str(listed["IdentityStoreId"])


def _rename_permission_set(region: str, moto_arn: str, arn: str) -> None:
    (permission_set,) = [found for found in _backend(region).permission_sets if found.permission_set_arn == moto_arn]
    permission_set.permission_set_arn = arn


def _backend(region: str) -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ssoadmin.models import ssoadmin_backends

    return ssoadmin_backends[DEFAULT_ACCOUNT_ID][region]
