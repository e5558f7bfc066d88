"""Fetch the main session's TIP and call identity_whoami over the local identity server.

Usage: python client.py [SOCKET]  (default: $IDENTITY_SOCKET or
~/.openclaw/plugins/identity/identity.sock). Needs httpx (``pip install httpx``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx


def main() -> int:
    """Print the /token answer and the identity_whoami result; 1 on an HTTP error."""
    default = Path.home() / ".openclaw/plugins/identity/identity.sock"
    socket = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("IDENTITY_SOCKET", str(default))
    transport = httpx.HTTPTransport(uds=socket)
    with httpx.Client(transport=transport, base_url="http://localhost", timeout=10) as client:
        token = client.get("/token")
        print("GET /token", token.status_code, json.dumps(token.json()))
        whoami = client.post("/tool/identity_whoami", json={"params": {}, "session": ""})
        print("POST /tool/identity_whoami", whoami.status_code, json.dumps(whoami.json()))
        return 0 if token.is_success and whoami.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
