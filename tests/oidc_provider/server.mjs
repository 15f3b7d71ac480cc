// A real OpenID Connect provider on loopback for Darkroom's tests: the npm package
// oidc-provider (OpenID Certified), with a plain login page of our own instead of its
// development one (that one loads web fonts from the internet).
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS and POST_LOGOUT_REDIRECT_URIS
// (comma-separated; signing out there ends with a confirmation page, as most providers ask;
// LOGOUT=0 leaves end_session_endpoint out, as Google does). ROGUE=1 makes it
// publish a different key (same kid) from the one it signs ID tokens with, as a forger would.
// It listens on a free loopback port and prints {"issuer": "http://127.0.0.1:PORT"}.
//
// The login page asks for the e-mail, whether it is verified, and optionally a subject (the
// provider's stable id; by default the e-mail), given name and family name.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const accounts = new Map();
const {
  CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS, POST_LOGOUT_REDIRECT_URIS, LOGOUT, ROGUE,
} = process.env;
const KID = 'darkroom-test-key';

function rsaKey() {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

const signing = { ...rsaKey().privateKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'RS256' };
const forged = ROGUE === '1'
  ? { ...rsaKey().publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig', alg: 'RS256' }
  : null;

const escape = (text) => String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}

function loginPage(uid, hint) {
  return page('Test identity provider: sign in', `
<form method="post" action="/interaction/${escape(uid)}/login">
  <p><label>E-mail <input type="email" name="email" required value="${escape(hint)}"></label></p>
  <p><label><input type="checkbox" name="email_verified" checked> E-mail verified</label></p>
  <p><label>Subject <input type="text" name="subject"></label></p>
  <p><label>Given name <input type="text" name="given_name"></label></p>
  <p><label>Family name <input type="text" name="family_name"></label></p>
  <p><button type="submit">Sign in</button></p>
</form>
<p><a href="/interaction/${escape(uid)}/abort">Cancel</a></p>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS.split(','),
      post_logout_redirect_uris: (POST_LOGOUT_REDIRECT_URIS || '').split(',').filter(Boolean),
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    jwks: { keys: [signing] },
    cookies: { keys: ['darkroom-test-provider-cookies'] },
    claims: {
      openid: ['sub'],
      // xms_edov: Microsoft Entra's "e-mail domain owner verified", sent instead of
      // email_verified once an operator adds it as an optional claim.
      email: ['email', 'email_verified', 'xms_edov'],
      profile: ['name', 'given_name', 'family_name'],
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      // RP-initiated logout (end_session_endpoint), with plain pages of our own.
      rpInitiatedLogout: {
        enabled: LOGOUT !== '0',
        async logoutSource(ctx, form) {
          ctx.body = page('Test identity provider: sign out', `${form}
<p><button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button></p>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Test identity provider: signed out', '<p>You are signed out.</p>');
        },
      },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // A company's own application: no consent screen, as most identity providers do it.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile');
      await grant.save();
      return grant;
    },
    async findAccount(ctx, sub) {
      const claims = accounts.get(sub);
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...claims }) };
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Test identity provider: error', `<p>${escape(out.error)}: ${escape(out.error_description)}</p>`);
    },
  });

  provider.use(async (ctx, next) => {
    if (forged && ctx.path === '/jwks') {
      ctx.type = 'application/jwk-set+json';
      ctx.body = JSON.stringify({ keys: [forged] });
      return;
    }
    const match = ctx.path.match(/^\/interaction\/([\w-]+)(?:\/(login|abort))?$/);
    if (!match) {
      await next();
      return;
    }
    const [, uid, action] = match;
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (!action && ctx.method === 'GET') {
      ctx.type = 'html';
      ctx.body = loginPage(uid, details.params.login_hint);
      return;
    }
    if (action === 'abort') {
      const result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
      await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
      return;
    }
    if (action === 'login' && ctx.method === 'POST') {
      const form = await readForm(ctx.req);
      const email = form.get('email');
      const subject = form.get('subject') || email;
      accounts.set(subject, {
        email,
        // Entra-like people have no email_verified at all (undefined is left out).
        email_verified: form.has('entra') ? undefined : form.get('email_verified') === 'on',
        xms_edov: form.has('entra') ? form.get('xms_edov') === 'on' : undefined,
        given_name: form.get('given_name') || undefined,
        family_name: form.get('family_name') || undefined,
      });
      await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: subject } }, {
        mergeWithLastSubmission: false,
      });
      return;
    }
    ctx.throw(405);
  });

  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
