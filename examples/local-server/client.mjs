// Fetch the main session's TIP and call identity_whoami over the local identity server.
// Usage: node client.mjs [SOCKET]  (default: $IDENTITY_SOCKET or ~/.openclaw/plugins/identity/identity.sock)
import http from "node:http";
import os from "node:os";
import path from "node:path";

const socketPath =
  process.argv[2] ??
  process.env.IDENTITY_SOCKET ??
  path.join(os.homedir(), ".openclaw/plugins/identity/identity.sock");

function request(method, urlPath, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath,
        method,
        path: urlPath,
        headers: payload ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } : {},
      },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (data += chunk));
        res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(data) }));
      },
    );
    req.on("error", reject);
    if (payload) req.write(payload);
    req.end();
  });
}

const token = await request("GET", "/token");
console.log("GET /token", token.status, JSON.stringify(token.body));
const whoami = await request("POST", "/tool/identity_whoami", { params: {}, session: "" });
console.log("POST /tool/identity_whoami", whoami.status, JSON.stringify(whoami.body));
process.exit(token.status === 200 && whoami.status === 200 ? 0 : 1);
