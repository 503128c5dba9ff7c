"""The demo stack's client for the agent's operator API (bearer operator token)."""

from __future__ import annotations

from typing import Any

import httpx


class AgentApi:
    """The agent-API half of ``DemoStack`` (a mixin: the stack owns the attributes)."""

    operator_token: str

    @property
    def agent_url(self) -> str:
        raise NotImplementedError  # provided by the stack

    def agent_client(self, operator: str = "demo") -> httpx.Client:
        """An HTTP client for the agent's operator API (bearer operator token)."""
        return httpx.Client(base_url=self.agent_url, timeout=15.0, trust_env=False,
                            headers={"Authorization": f"Bearer {self.operator_token}",
                                     "X-Operator": operator})

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.agent_client() as c:
            r = c.request(method, path, **kwargs)
            r.raise_for_status()
            return r.json()

    def events(self, *, types: list[str] | None = None,
               incident: str | None = None) -> list[dict[str, Any]]:
        """The agent's event log (all pages), optionally filtered."""
        items: list[dict[str, Any]] = []
        since = 0
        params: dict[str, Any] = {"limit": 1000}
        if types:
            params["type"] = types
        if incident:
            params["incident"] = incident
        while True:
            page = self.api("GET", "/audit", params={**params, "since_seq": since})
            items.extend(page["items"])
            if page["next_since_seq"] is None:
                return items
            since = int(page["next_since_seq"])

    def incidents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("GET", "/incidents", params={"limit": 500})[
            "items"]
        return result

    def actions(self, incident: str | None = None,
                status: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("incident", incident), ("status", status)) if v}
        result: list[dict[str, Any]] = self.api("GET", "/actions",
                                                params={**params, "limit": 1000})
        return result
