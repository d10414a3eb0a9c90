"""Azure Resource Manager through its SDK: the clients, made on first use, and one call at a time."""

from __future__ import annotations

import io
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.authorization.v2020_10_01 import AuthorizationManagementClient as PimClient
from azure.mgmt.authorization.v2022_04_01 import AuthorizationManagementClient as RbacClient

from jitbot.core.errors import ProviderError
from jitbot.providers.base import CONNECT_S, READ_S
from jitbot.providers.pim import ArmRefusal

PUBLIC_ARM = "https://management.azure.com"


def first_line(error: Exception) -> str:
    """The head of an SDK error's text (theirs run to many lines; none carries a token)."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Arm:
    """ARM at `endpoint` (elsewhere for sovereign clouds and local stand-ins), signed in with `credential`, else
    with a DefaultAzureCredential made on first use."""

    def __init__(self, endpoint: str, credential: TokenCredential | None = None) -> None:
        self.endpoint = endpoint
        self._credential = credential
        self._pim: PimClient | None = None
        self._rbac: RbacClient | None = None
        # azure-core refuses to send a bearer token over plain http; a stand-in on this machine has no TLS and
        # the token never leaves the host, so only a loopback endpoint may switch that check off, per call
        loopback: dict[str, Any] = {"enforce_https": False} if is_loopback(self.endpoint) else {}
        # azure-core's transport takes them per call (its default: 300 s to connect, 300 s to read)
        self._call_options = {"connection_timeout": CONNECT_S, "read_timeout": READ_S, **loopback}

    def pim(self) -> PimClient:
        if self._pim is None:
            self._pim = PimClient(self.credential(), base_url=self.endpoint, **self._client_options())
        return self._pim

    def rbac(self) -> RbacClient:
        if self._rbac is None:
            # role_definitions.get addresses the role by scope: the client's subscription id is never used
            self._rbac = RbacClient(
                self.credential(), subscription_id="", base_url=self.endpoint, **self._client_options()
            )
        return self._rbac

    def credential(self) -> TokenCredential:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    def _client_options(self) -> dict[str, Any]:
        # the token's audience is the endpoint's own (sovereign clouds); no retries inside the SDK: it would
        # sleep out a Retry-After in the worker, while a ProviderError with not_before lets the job come back
        return {"credential_scopes": [f"{self.endpoint}/.default"], "retry_total": 0}

    def call(self, call: Any, *args: Any) -> Any:
        """One ARM call; its refusal as ArmRefusal, a failure to reach Azure or to sign in as ProviderError."""
        try:
            return call(*args, **self._call_options)
        except ClientAuthenticationError as error:  # no token could be had, or ARM did not accept it
            raise ProviderError(
                f"Azure sign-in failed ({first_line(error)}): check AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                "AZURE_CLIENT_SECRET or the managed identity, and that AZURE_ARM_ENDPOINT belongs to the same cloud "
                "(azure.identity logs each credential it tried).",
                retryable=False,
            ) from None
        except HttpResponseError as error:
            code = error.error.code if error.error and error.error.code else str(error.status_code)
            message = error.error.message if error.error and error.error.message else str(error.reason)
            retry_after = getattr(error.response, "headers", {}).get("Retry-After")  # typed without headers
            raise ArmRefusal(error.status_code or 0, code, message, retry_after) from None
        except (ServiceRequestError, ServiceResponseError) as error:  # no connection, or no answer in time
            raise ProviderError(
                f"Azure Resource Manager at {self.endpoint} could not be reached: {first_line(error)}",
                retryable=True,
                unanswered=True,
            ) from None
        except AzureError as error:
            raise ProviderError(f"Azure's SDK failed: {first_line(error)}", retryable=True) from None


def json_body(body: dict[str, Any]) -> io.BytesIO:
    """The body exactly as built (the SDK sends bytes as they are; a model it would re-serialize)."""
    return io.BytesIO(json.dumps(body).encode())
