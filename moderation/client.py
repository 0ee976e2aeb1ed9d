"""A small client for the upload hook API (httpx), with retries on outages."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

__all__ = ["ApiError", "Client"]

RETRY_STATUSES = {502, 503, 504}


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, ApiError) and exc.status in RETRY_STATUSES


class Client:
    """``Client(url, token).submit("photo.jpg")`` → the accepted job (id, status, sha256…)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 30.0,
        retry_for_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self._retry_for_s = retry_for_s

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(self._retry_for_s),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                response = self._http.request(method, url, **kwargs)
                if response.status_code >= 400:
                    try:
                        detail = response.json().get("detail", response.text)
                    except ValueError:
                        detail = response.text
                    raise ApiError(response.status_code, detail)
                return response.json()
        raise AssertionError("unreachable")  # pragma: no cover

    def submit(
        self,
        image: str | Path | bytes,
        *,
        external_id: str | None = None,
        callback_url: str | None = None,
        priority: int = 0,
        **scenario: Any,
    ) -> dict[str, Any]:
        """Submit one image (a path or bytes); returns the accepted job. ``scenario``:
        ``match_text``, ``tags``, ``context`` (docs/policies.md); None values are not sent."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        body = {
            "image_base64": base64.b64encode(data).decode(),
            "external_id": external_id,
            "callback_url": callback_url,
            "priority": priority,
            **{k: v for k, v in scenario.items() if v is not None},
        }
        return dict(self._call("POST", "/v1/jobs", json=body))

    def submit_many(
        self, images: Sequence[str | Path | bytes], *, priority: int = 0, **scenario: Any
    ) -> list[dict[str, Any]]:
        """Submit several images in one request (the batch form), each with ``scenario``."""
        extra = {k: v for k, v in scenario.items() if v is not None}
        jobs = []
        for image in images:
            data = image if isinstance(image, bytes) else Path(image).read_bytes()
            encoded = base64.b64encode(data).decode()
            jobs.append({"image_base64": encoded, "priority": priority, **extra})
        return list(self._call("POST", "/v1/jobs/batch", json={"jobs": jobs}))

    def get(self, job_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/jobs/{job_id}"))

    def list(self, *, status: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
        """Every job matching the filters (follows the pages)."""
        params: dict[str, Any] = {k: v for k, v in {"status": status, "since": since}.items() if v}
        out: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self._call(
                "GET", "/v1/jobs", params={**params, "after_id": after, "limit": 1000}
            )
            out += page["jobs"]
            if page["next_after_id"] is None:
                return out
            after = page["next_after_id"]

    def wait(self, job_id: int, timeout_s: float = 60.0, poll_s: float = 0.2) -> dict[str, Any]:
        """Poll until the job is scored, failed or quarantined (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job["status"] in ("scored", "failed", "quarantined"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)
