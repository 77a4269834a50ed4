// @ts-check
// OIDC sign-in: authorization code with PKCE (RFC 7636) against the API's
// issuer, as a public client (no secret in the browser). Only the one-time
// PKCE verifier and state wait in sessionStorage across the redirect; the
// token itself is kept in memory like an API key, and the code is removed
// from the address bar at once.

const PENDING = 'hoheit.oidc.pending';

/**
 * The single sign-on the API offers (its `/config.json`).
 * @typedef {{ issuer: string, client_id: string, scope?: string }} OidcConfig
 */
/**
 * What waits in sessionStorage across the redirect.
 * @typedef {{ verifier: string, state: string, hash: string }} Pending
 */

/** @param {ArrayBuffer | Uint8Array} bytes */
function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {number} bytes */
function random(bytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/**
 * The issuer's OpenID configuration (the endpoints used here).
 * @param {string} issuer
 * @returns {Promise<{ authorization_endpoint: string, token_endpoint: string }>}
 */
async function discover(issuer) {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`, { credentials: 'omit', cache: 'no-store' });
  if (!response.ok) throw new Error(`${issuer}: discovery answered HTTP ${response.status}`);
  return response.json();
}

const redirectUri = () => `${location.origin}/`;

/**
 * Leaves for the issuer's login page.
 * @param {OidcConfig} config
 */
export async function startSignIn(config) {
  const meta = await discover(config.issuer);
  const verifier = random(48);
  const state = random(16);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, hash: location.hash || '#/map' }));
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope || 'openid',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/**
 * Back from the issuer: exchanges the code for a token. Null when this page load is no return.
 * @param {OidcConfig} config
 * @returns {Promise<string | null>}
 */
export async function finishSignIn(config) {
  const params = new URLSearchParams(location.search);
  const code = params.get('code');
  const error = params.get('error');
  if (!code && !error) return null;
  /** @type {Pending | null} */
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', `/${pending?.hash || '#/map'}`);
  if (error) throw new Error(params.get('error_description') || error);
  if (!pending || pending.state !== params.get('state')) throw new Error('the sign-in answer does not belong to this page (state)');
  const meta = await discover(config.issuer);
  const response = await fetch(meta.token_endpoint, {
    method: 'POST',
    credentials: 'omit',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: /** @type {string} */ (code), // set: the page load is a return without an error
      redirect_uri: redirectUri(),
      client_id: config.client_id,
      code_verifier: pending.verifier,
    }),
  });
  /** @type {{ access_token?: string, error?: string, error_description?: string }} */
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) throw new Error(body.error_description || body.error || `HTTP ${response.status}`);
  return body.access_token;
}
