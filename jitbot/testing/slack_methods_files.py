"""The Slack stand-in's file uploads: files.getUploadURLExternal, the upload to the URL it hands out, and
files.completeUploadExternal."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any


class FileMethods:
    """Mixed into SlackStandIn, whose `__init__` sets the state declared here and which serves the calls."""

    uploads: dict[str, bytes]  # file id → the bytes uploaded for it
    _cond: threading.Condition
    if TYPE_CHECKING:  # SlackStandIn's: the upload URLs are on the same server as the Web API

        @property
        def url(self) -> str: ...

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        """The bytes POSTed to an upload URL handed out by files.getUploadURLExternal."""
        with self._cond:
            if file_id not in self.uploads:
                return False
            self.uploads[file_id] = data
            return True

    def _upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{len(self.uploads) + 1:08d}"
        self.uploads[file_id] = b""
        return {"ok": True, "file_id": file_id, "upload_url": self.url.removesuffix("/api/") + f"/upload/{file_id}"}

    def _complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        listed = json.loads(files) if isinstance(files, str) else files or []
        missing = [f["id"] for f in listed if not self.uploads.get(f["id"])]
        if missing:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}
