#!/bin/sh
# Fetch the main session's TIP and call identity_whoami over the local identity server.
# Usage: curl.sh [SOCKET]   (default: $IDENTITY_SOCKET or ~/.openclaw/plugins/identity/identity.sock)
set -eu
SOCKET="${1:-${IDENTITY_SOCKET:-$HOME/.openclaw/plugins/identity/identity.sock}}"
echo "GET /token"
curl --silent --show-error --fail-with-body --unix-socket "$SOCKET" http://localhost/token
echo
echo "POST /tool/identity_whoami"
curl --silent --show-error --fail-with-body --unix-socket "$SOCKET" \
  -X POST http://localhost/tool/identity_whoami \
  -H 'Content-Type: application/json' \
  -d '{"params": {}, "session": ""}'
echo
