// An independent identity provider for Hoheit's OIDC tests: oidc-provider
// (OpenID Certified, https://openid.net/certification/) on loopback, so the
// API's token verification and the dashboard's sign-in are checked against
// someone else's reading of the specifications, not ours.
//
//   node tests/oidc-provider/provider.mjs '<settings JSON>'
//
// Settings (written by the Rust tests, tests/it/oidc.rs and tests/it/dashboard.rs):
//   port      loopback port to listen on; 0 picks one (a restart passes the
//             previous port so the issuer stays the same)
//   resources [{ indicator, audience, scope }]: APIs as resource servers
//             (RFC 8707); the first is every client's default; every access
//             token is a JWT (RFC 9068) for one of them
//   clients   oidc-provider client metadata, each with two settings of ours:
//             access_token_alg (RS256 or ES256) and access_token_ttl (seconds)
//
// Signing keys (one RS256, one ES256) are generated at each start with new
// key ids: restarting on the same port is a key rotation. Sign-in uses the
// provider's own development login and consent pages (devInteractions): any
// login name is accepted and becomes the account's `sub`.
//
// Once listening, one line goes to stdout: {"issuer": …, "keys": [{kid, alg,
// pem}]} with the PRIVATE keys, so a test can re-sign a real token with one
// claim changed where the provider cannot be made to issue it (`nbf` ahead,
// another `iss`). Then a line `jwks requested` for each fetch of the key set.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const settings = JSON.parse(process.argv[2] || 'null');
if (!Array.isArray(settings?.resources) || !Array.isArray(settings.clients)) {
  console.error('usage: provider.mjs \'{"port": 0, "resources": [...], "clients": [...]}\'');
  process.exit(2);
}

function signingKey(alg) {
  const { privateKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, kid: `${alg}-${randomUUID()}`, alg };
}

const keys = [signingKey('RS256'), signingKey('ES256')];
const jwks = { keys: keys.map(({ privateKey, kid, alg }) => ({ ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' })) };
const ours = new Map(settings.clients.map((c) => [c.client_id, c]));
const clients = settings.clients.map(({ access_token_alg, access_token_ttl, ...metadata }) => metadata);
const origins = (client) => new Set(client.redirectUris.map((uri) => new URL(uri).origin));

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(settings.port || 0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const resources = new Map(settings.resources.map((r) => [r.indicator, r]));
const [defaultResource] = settings.resources;
const provider = new Provider(issuer, {
  clients,
  jwks,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  pkce: { required: () => true },
  // The dashboard's page calls the token endpoint from its own origin.
  clientBasedCORS: (ctx, origin, client) => origins(client).has(origin),
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Like a town's identity provider configured for Hoheit: clients need
      // not name the API, their tokens are for it.
      defaultResource: () => defaultResource.indicator,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator, client) => {
        const resource = resources.get(indicator);
        if (!resource) throw new errors.InvalidTarget();
        const { access_token_alg: alg = 'ES256', access_token_ttl: ttl = 300 } = ours.get(client.clientId) || {};
        return {
          scope: resource.scope,
          audience: resource.audience,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ttl,
          jwt: { sign: { alg } },
        };
      },
    },
  },
});
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'jwks') console.log('jwks requested');
});
provider.on('server_error', (ctx, error) => console.error(`server_error: ${error.stack}`));
server.on('request', provider.callback());

const shutdown = () => server.close(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

const pem = ({ privateKey, kid, alg }) => ({ kid, alg, pem: privateKey.export({ format: 'pem', type: 'pkcs8' }) });
console.log(JSON.stringify({ issuer, keys: keys.map(pem) }));
