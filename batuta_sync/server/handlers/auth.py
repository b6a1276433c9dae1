"""Identity: ``GET /api/whoami-v2``."""

from __future__ import annotations

from batuta_sync.server.handlers.base import BaseHandler
from batuta_sync.server.protocol import HTTPError


class AuthHandlers(BaseHandler):
    def _whoami(self) -> None:
        user = self._user()
        if user is None:
            raise HTTPError(401, "Invalid username or password.")
        orgs = [
            {
                "type": "org",
                "name": org,
                "fullname": org,
                "roleInOrg": "write" if user.role == "write" else "read",
            }
            for org, members in sorted(self.hub.orgs.items())
            if user.name in members
        ]
        self._json(
            {
                "type": "user",
                "id": user.name,
                "name": user.name,
                "fullname": user.name,
                "email": None,
                "emailVerified": False,
                "canPay": False,
                "isPro": False,
                "orgs": orgs,
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": f"{user.name}-token", "role": user.role},
                },
            }
        )
