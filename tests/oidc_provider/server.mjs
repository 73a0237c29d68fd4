// Local OpenID Connect provider for the oauthvault test suite.
//
// Env: PORT (0 = any free port), OIDC_CONFIG (path to a JSON config file, optional).
// Prints exactly one JSON line to stdout when ready: {"ready":true,"issuer":"http://127.0.0.1:PORT"}.
// Everything else (oidc-provider warnings, errors) goes to stderr.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

import Provider from 'oidc-provider';
// Deep imports are OK because the version is pinned exactly: the stock in-memory adapter keeps
// only ~1000 entries (LRU), which a long test session can exceed, evicting live grants/tokens.
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

const DAY = 24 * 60 * 60;

const config = {
  auto_approve: false,
  clients: [{
    client_id: 'test-client',
    client_secret: 'test-secret',
    redirect_uris: ['http://127.0.0.1:8765/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  ...(process.env.OIDC_CONFIG ? JSON.parse(readFileSync(process.env.OIDC_CONFIG, 'utf8')) : {}),
};
const ttl = {
  AccessToken: 3600, RefreshToken: 14 * DAY, AuthorizationCode: 60, IdToken: 3600, ...config.ttl,
};
// Grants/sessions must outlive refresh tokens, or refreshes fail with a confusing "grant not found".
ttl.Grant ??= Math.max(ttl.RefreshToken, 14 * DAY);
ttl.Session ??= ttl.Grant;
ttl.Interaction ??= 3600;

const clients = config.clients.map((c) => ({
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  ...c,
}));

// --- test instrumentation ---------------------------------------------------------------------

const stats = {};
// Every access token issued, in order, with its account and when (the soak's grant log).
const issued = [];
let issuedProvider = null; // set once the provider exists
const bump = (key) => { stats[key] = (stats[key] ?? 0) + 1; };
let failPlan = null; // { status?, delayMs?, remaining }: applies to the next token requests
let failRevocations = 0; // the next this many revocation requests answer 503
let dropIdTokens = 0; // the next this many code exchanges answer without their id_token

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const raw = Buffer.concat(chunks);
  return { raw, form: new URLSearchParams(raw.toString()) };
}

const isLoopback = (addr) => ['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(addr);

async function testEndpoints(ctx) {
  if (!isLoopback(ctx.req.socket.remoteAddress)) ctx.throw(403);
  const route = `${ctx.method} ${ctx.path}`;
  if (route === 'GET /__test__/stats') {
    ctx.body = { ...stats };
  } else if (route === 'GET /__test__/issued') {
    const after = Number(ctx.query.after ?? 0);
    ctx.body = issued.slice(after);
  } else if (route === 'POST /__test__/reset') {
    for (const key of Object.keys(stats)) delete stats[key];
    failPlan = null;
    failRevocations = 0;
    dropIdTokens = 0;
    ctx.body = { ok: true };
  } else if (route === 'POST /__test__/drop-id-tokens') {
    dropIdTokens = Number(ctx.query.count ?? 1);
    ctx.body = { ok: true };
  } else if (route === 'POST /__test__/fail-revocations') {
    failRevocations = Number(ctx.query.count ?? 1);
    ctx.body = { ok: true };
  } else if (route === 'POST /__test__/fail') {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const {
      status, delay_ms: delayMs, count = 1, html = false,
    } = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    failPlan = count > 0 && (status || delayMs) ? {
      status, delayMs, html, remaining: count,
    } : null;
    ctx.body = { ok: true };
  } else {
    ctx.throw(404);
  }
}

// Wraps the token endpoint: counts every request by grant_type (including failures) and applies
// injected failures. The body is read here so injected failures can still be attributed to a
// grant_type; oidc-provider then re-parses it from req.body (it supports pre-read bodies).
async function tokenEndpoint(ctx, next) {
  const { raw, form } = await readForm(ctx.req);
  ctx.req.body = raw;
  const grantType = form.get('grant_type') ?? 'unknown';
  bump(grantType);

  if (failPlan) {
    const plan = failPlan;
    plan.remaining -= 1;
    if (plan.remaining <= 0) failPlan = null;
    if (plan.delayMs) await sleep(plan.delayMs);
    if (plan.status) {
      bump(`${grantType}_failed`);
      bump('injected_failures');
      ctx.status = plan.status;
      if (plan.html) { // a web framework's own error page, as Django's 500 is
        ctx.type = 'html';
        ctx.body = `<h1>Server Error (${plan.status})</h1>`;
        return;
      }
      ctx.body = {
        error: plan.status === 503 ? 'temporarily_unavailable' : 'server_error',
        error_description: 'injected test failure',
      };
      return;
    }
  }

  await next();
  bump(ctx.status === 200 ? `${grantType}_ok` : `${grantType}_failed`);
  if (ctx.status === 200 && grantType === 'authorization_code' && dropIdTokens > 0) {
    dropIdTokens -= 1;
    const { id_token: _dropped, ...rest } = ctx.body;
    ctx.body = rest;
  }
  const value = ctx.status === 200 ? ctx.body?.access_token : undefined;
  if (value && issuedProvider) {
    const token = await issuedProvider.AccessToken.find(value);
    issued.push({
      token: value,
      refresh: ctx.body?.refresh_token ?? null,
      account: token?.accountId ?? null,
      at: Date.now() / 1000,
      grant: grantType,
    });
  }
}

// oidc-provider follows OIDC Core 11 strictly: `offline_access` is silently dropped from the request
// unless `prompt=consent` is sent, so no refresh token would be issued. Add `consent` to the prompt
// of such requests so clients get refresh tokens just by asking for offline_access.
async function promptConsentForOfflineAccess(ctx) {
  const needsConsent = (params) => {
    const scope = (params.scope ?? '').split(' ');
    const prompt = (params.prompt ?? '').split(' ').filter(Boolean);
    return scope.includes('offline_access') && !prompt.includes('consent') && !prompt.includes('none')
      ? [...prompt, 'consent'].join(' ') : null;
  };
  if (ctx.method === 'GET') {
    const prompt = needsConsent(ctx.query);
    if (prompt) ctx.query = { ...ctx.query, prompt };
  } else if (ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded')) {
    const { raw, form } = await readForm(ctx.req);
    const prompt = needsConsent(Object.fromEntries(form));
    if (prompt) form.set('prompt', prompt);
    ctx.req.body = prompt ? Buffer.from(form.toString()) : raw;
  }
}

// --- interaction pages (login + consent) ------------------------------------------------------

const esc = (s) => String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>${body}</body></html>`;

function loginPage(uid, hint) {
  return page('Sign in', `<form id="login-form" method="post" action="/interaction/${esc(uid)}/login">
<label>Username <input id="login" name="login" value="${esc(hint ?? '')}" autofocus required></label>
<button id="submit" type="submit">Sign in</button></form>`);
}

function consentPage(uid, details) {
  return page('Authorize access', `<p>Client <b id="client">${esc(details.params.client_id)}</b>
requests scopes: <span id="scopes">${esc(details.params.scope ?? '')}</span></p>
<form id="consent-form" method="post" action="/interaction/${esc(uid)}/confirm">
<button id="authorize" type="submit" name="decision" value="authorize">Authorize</button>
<button id="deny" type="submit" name="decision" value="deny">Deny</button></form>`);
}

// Grants everything the consent prompt reported as missing (the standard oidc-provider recipe).
async function grantConsent(provider, details) {
  const { prompt: { details: missing }, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return { consent: { grantId: await grant.save() } };
}

async function interactions(provider, ctx) {
  const [, uid, action] = ctx.path.split('/').slice(1);
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const finish = async (result) => {
    ctx.status = 303;
    const opts = { mergeWithLastSubmission: false };
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, opts));
  };
  const prompt = details.prompt.name;

  if (ctx.method === 'GET' && !action) {
    if (config.auto_approve) {
      return finish(prompt === 'login'
        ? { login: { accountId: details.params.login_hint || 'test-user' } }
        : await grantConsent(provider, details));
    }
    ctx.type = 'html';
    ctx.body = prompt === 'login' ? loginPage(uid, details.params.login_hint) : consentPage(uid, details);
    return undefined;
  }

  const { form } = ctx.method === 'POST' ? await readForm(ctx.req) : { form: new URLSearchParams() };
  if (action === 'login' && prompt === 'login') {
    const login = form.get('login')?.trim();
    if (!login) ctx.throw(400, 'username required');
    return finish({ login: { accountId: login } });
  }
  if (action === 'confirm' && prompt === 'consent') {
    if (form.get('decision') === 'deny') {
      return finish({ error: 'access_denied', error_description: 'End-User denied the request' });
    }
    return finish(await grantConsent(provider, details));
  }
  return ctx.throw(400, 'unexpected interaction step');
}

// --- provider ---------------------------------------------------------------------------------

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

// The test helper passes a signing key it generated once per test process (RSA key generation is
// the slowest part of starting); without one, generate it here.
const signingJwk = config.signing_jwk
  ?? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const store = new LRU({ maxSize: 1_000_000 });
const provider = new Provider(issuer, {
  adapter: (model) => new MemoryAdapter(model, store),
  clients,
  jwks: { keys: [{ ...signingJwk, kid: 'rs256', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: (ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub, name: sub, email: `${sub}@example.test`, email_verified: true }),
  }),
  claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'] },
  responseTypes: ['code'],
  // HS256/384/512 too, for a client registered with id_token_signed_response_alg = HS*: its
  // id_tokens are then MACed with its client secret (OIDC Core 10.1). The default stays RS256.
  enabledJWA: { idTokenSigningAlgValues: ['RS256', 'HS256', 'HS384', 'HS512'] },
  pkce: { required: () => true }, // v9 only implements S256, so "S256 only" holds by construction.
  // Refresh token whenever offline_access was granted (same as the default, stated explicitly; the
  // scope survives the authorization request thanks to promptConsentForOfflineAccess above).
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  // Always rotate; presenting an already-rotated refresh token revokes the whole grant.
  rotateRefreshToken: true,
  ttl,
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true, allowedPolicy: async () => true },
    revocation: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
    userinfo: { enabled: true },
    // RFC 9207: oidc-provider v9 always adds `iss` to authorization responses (no feature flag).
  },
});
issuedProvider = provider;
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/__test__/')) return testEndpoints(ctx);
  if (ctx.path.startsWith('/interaction/')) return interactions(provider, ctx);
  if (ctx.method === 'POST' && ctx.path === '/token') return tokenEndpoint(ctx, next);
  if (ctx.method === 'POST' && ctx.path === '/token/revocation' && failRevocations > 0) {
    failRevocations -= 1;
    bump('revocation');
    bump('revocation_failed');
    ctx.status = 503;
    ctx.body = { error: 'temporarily_unavailable', error_description: 'injected test failure' };
    return undefined;
  }
  if (ctx.path === '/auth' || ctx.path === '/request') await promptConsentForOfflineAccess(ctx);
  await next();
  if (ctx.method === 'POST' && ctx.path === '/token/revocation') {
    bump('revocation');
    bump(ctx.status === 200 ? 'revocation_ok' : 'revocation_failed');
  }
  return undefined;
});

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);

const shutdown = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections(); // keep-alive sockets would otherwise delay exit
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
