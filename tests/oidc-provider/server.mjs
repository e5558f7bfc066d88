// A certified OpenID provider (panva/oidc-provider) for the relying-party interop tests.
//
//   node server.mjs --port 4455            (or OIDC_PORT=4455 node server.mjs)
//
// Environment (all optional):
//   OIDC_PORT            port on 127.0.0.1 when --port is not given (0: any free port)
//   OIDC_SIGNING_ALG     RS256 (default) or ES256: the ID-token signing algorithm
//   OIDC_CLIENT_ID       default agent-identity-rp
//   OIDC_CLIENT_SECRET   default agent-identity-rp-secret
//   OIDC_REDIRECT_URIS   comma-separated; default http://127.0.0.1:18789/identity/oauth/callback
//
// One confidential client (client_secret_basic, PKCE S256 required, refresh tokens rotate on
// every use), one account "alice" (devInteractions' login form accepts any password; other
// logins are unknown accounts), and the built-in login and consent pages.
//
// Key rotation, for the JWKS-refetch tests: POST /__admin/rotate?keep=1[&alg=ES256] makes a
// new signing key (new kid) that signs from then on; with keep=1 the old keys stay in the
// JWKS (still verifiable), without it they are dropped. It answers {"kid", "kids"}. The
// provider instance is rebuilt around the new key set; sessions, grants and refresh tokens
// live in the module-wide in-memory adapter and the cookie keys are fixed, so they survive.
//
// Prints "listening on <issuer>" once ready. Loopback only: this is a test fixture.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

function option(name) {
  const index = process.argv.indexOf(name);
  return index === -1 ? undefined : process.argv[index + 1];
}

const host = '127.0.0.1';
const port = Number(option('--port') ?? process.env.OIDC_PORT ?? 0);
const clientId = process.env.OIDC_CLIENT_ID ?? 'agent-identity-rp';
const clientSecret = process.env.OIDC_CLIENT_SECRET ?? 'agent-identity-rp-secret';
const redirectUris = (
  process.env.OIDC_REDIRECT_URIS ?? 'http://127.0.0.1:18789/identity/oauth/callback'
).split(',');
let signingAlg = (process.env.OIDC_SIGNING_ALG ?? 'RS256').toUpperCase();

function checkAlg(alg) {
  if (alg !== 'RS256' && alg !== 'ES256') {
    throw new Error(`unsupported signing alg ${alg}; use RS256 or ES256`);
  }
  return alg;
}

function newKey(alg) {
  const { privateKey } = alg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`,
    alg,
    use: 'sig',
  };
}

const accounts = new Map([
  ['alice', { sub: 'alice', email: 'alice@example.com', email_verified: true, name: 'Alice' }],
]);
// Fixed for the process's lifetime so cookies stay valid across a key rotation.
const cookieKeys = [randomBytes(32).toString('base64url')];
let keys = [newKey(checkAlg(signingAlg))];

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: signingAlg,
      },
    ],
    jwks: { keys },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: cookieKeys },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // Profile and email claims in the ID token itself, as the UserPool issues them.
    conformIdTokenClaims: false,
    rotateRefreshToken: true,
    async findAccount(_ctx, id) {
      const claims = accounts.get(id);
      if (claims === undefined) {
        return undefined;
      }
      return { accountId: id, claims: async () => ({ ...claims }) };
    },
  });
  return provider.callback();
}

function rotate(url) {
  signingAlg = checkAlg((url.searchParams.get('alg') ?? signingAlg).toUpperCase());
  const key = newKey(signingAlg);
  keys = url.searchParams.get('keep') === '1' ? [key, ...keys] : [key];
  return key.kid;
}

let handler;
let issuer;

const server = createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname === '/__admin/rotate') {
    try {
      const kid = rotate(url);
      handler = buildProvider(issuer);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kid, kids: keys.map((k) => k.kid) }));
    } catch (error) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(error.message) }));
    }
    return;
  }
  handler(req, res);
});

server.listen(port, host, () => {
  issuer = `http://${host}:${server.address().port}`;
  handler = buildProvider(issuer);
  process.stdout.write(`listening on ${issuer}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
