"""The control plane ``/_batuta/`` (faults, request log, counters; admin token, off by default)."""

from __future__ import annotations

from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import HTTPError


class ControlHandlers(BaseHandler):
    def _control(self, d: list[str]) -> None:
        hub = self.hub
        m = self.command
        if d == ["faults"]:
            if m == "POST":
                body = self._json_body()
                try:
                    if body:
                        hub.faults.configure(**body)
                    else:
                        hub.faults.reset()
                except (ValueError, TypeError) as exc:
                    raise HTTPError(400, str(exc))
                return self._faults_json()
            if m == "GET":
                return self._faults_json()
            if m == "DELETE":
                hub.faults.reset()
                return self._faults_json()
        if d == ["faults", "counts"] and m == "DELETE":
            hub.faults.clear_counts()
            return self._faults_json()
        if d == ["log"]:
            if m == "GET":
                return self._json(hub.log.as_json())
            if m == "DELETE":
                hub.log.clear()
                return self._json({"cleared": True})
        if d == ["counters"] and m == "GET":
            return self._json(hub.counters)
        raise HTTPError(404, f"Not found: {self.raw_path}")

    def _faults_json(self) -> None:
        faults = self.hub.faults
        counts = faults.counts
        self._json({"faults": faults.snapshot(), "injected": counts, "injected_total": sum(counts.values())})
