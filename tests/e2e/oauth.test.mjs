// End-to-end test of the OAuth 2.0 login and consent pages in headless Debian Chromium (playwright-core).
//
// Run by tests/e2e/run, which provisions a fresh service, starts it and exports its demo.env here
// (CSC_URL, CSC_TLS_CA, CSC_USER, ... see scripts/provision) plus E2E_ARTIFACTS (screenshot folder).
//
//   happy path      authorize -> login page -> consent page (PIN) -> approve -> redirect with code and state
//                   -> token exchange (PKCE) -> signHash with the token as Bearer -> the signature verifies
//   deny            deny on the consent page -> redirect with error=access_denied and the state
//   wrong password  the error shows on the login page, which stays usable (a second try gets through)
//   resources       every request the pages make goes to the service itself; each page carries a CSP header
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { shotLangs } from './lib.mjs';

// ---- environment ------------------------------------------------------------------------------

function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is not set (run this through tests/e2e/run)`);
  return v;
}

const E = {};
for (const k of ['CSC_URL', 'CSC_TLS_CA', 'CSC_USER', 'CSC_PASSWORD', 'CSC_PIN', 'CSC_TOTP_SECRET', 'CSC_CRED_EC',
  'CSC_USER2', 'CSC_PASSWORD2', 'CSC_CRED2', 'CSC_PIN2', 'CSC_TOTP_SECRET2',
  'CSC_OAUTH_CLIENT_ID', 'CSC_OAUTH_CLIENT_SECRET', 'CSC_OAUTH_REDIRECT_URI']) {
  E[k] = env(k);
}
const BASE = E.CSC_URL.replace(/\/csc\/v2\/?$/, ''); // https://localhost:PORT
const ORIGIN = new URL(BASE).origin;
const REDIRECT = new URL(E.CSC_OAUTH_REDIRECT_URI);
const CA = fs.readFileSync(E.CSC_TLS_CA);
const ARTIFACTS = process.env.E2E_ARTIFACTS || path.resolve(import.meta.dirname ?? '.', '../artifacts/e2e');
const SHA256_OID = '2.16.840.1.101.3.4.2.1';
const ECDSA_SHA256_OID = '1.2.840.10045.4.3.2';

// Chromium as the machine runs it: Debian's build, no network beyond loopback, a fresh profile.
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// ---- small helpers ----------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64url = (buf) => buf.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, value = 0;
  const out = [];
  for (const ch of s.toUpperCase().replace(/[\s=]/g, '')) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`bad base32 character ${JSON.stringify(ch)}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// RFC 6238 TOTP: HMAC-SHA-1, 30 s steps, 6 digits (RFC 4226 dynamic truncation).
function totpAt(key, step, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac('sha1', key).update(msg).digest();
  const off = h[h.length - 1] & 0x0f;
  const bin = ((h[off] & 0x7f) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3];
  return String(bin % 10 ** digits).padStart(digits, '0');
}

// A code accepted once per user: each login of a user uses a 30 s step later than its last one, and not
// one about to end (so the server still sees it as current).
const lastStep = new Map();
async function freshOtp(user, secret) {
  for (;;) {
    const now = Date.now() / 1000;
    const step = Math.floor(now / 30);
    const left = 30 - (now - step * 30);
    if (step > (lastStep.get(user) ?? -1) && left >= 4) {
      lastStep.set(user, step);
      return totpAt(base32Decode(secret), step);
    }
    await sleep(Math.ceil(left * 1000) + 250);
  }
}

// Node's own requests trust the demo CA (no certificate check is switched off here).
function request(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca: CA, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`${method} ${url}: timeout`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function cscCall(method, body, bearer) {
  const headers = { 'Content-Type': 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const res = await request('POST', `${E.CSC_URL}/${method}`, { headers, body: JSON.stringify(body) });
  assert.equal(res.status, 200, `${method} answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body);
}

// A document, its SHA-256, and an authorization request for one signature over it (PKCE S256).
function newAuthorization(credentialID, label) {
  const document = Buffer.from(`Document approved in the browser (${label}, ${credentialID}) at ${new Date().toISOString()}\n`);
  const digest = crypto.createHash('sha256').update(document).digest();
  const verifier = b64url(crypto.randomBytes(48));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  const state = crypto.randomBytes(12).toString('hex');
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: E.CSC_OAUTH_CLIENT_ID,
    redirect_uri: E.CSC_OAUTH_REDIRECT_URI,
    scope: 'credential',
    credentialID,
    numSignatures: '1',
    hashes: b64url(digest),
    hashAlgorithmOID: SHA256_OID,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  });
  return { document, digest, verifier, state, url: `${BASE}/oauth2/authorize?${q}` };
}

// ---- the browser ------------------------------------------------------------------------------

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'csc-e2e-chromium-'));
const contexts = [];

before(() => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  fs.rmSync(tmpRoot, { recursive: true, force: true });
});

// One Chromium per test, on a new empty profile (playwright takes the profile as launchPersistentContext's
// userDataDir: it refuses a --user-data-dir argument), closed when the test ends. Every request the page
// makes is recorded, and so are the requests to the redirect URI (the client's callback).
async function openBrowser(t, name) {
  const userDataDir = fs.mkdtempSync(path.join(tmpRoot, `${name}-`));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    ignoreHTTPSErrors: true, // the demo CA is not in Chromium's store; node's own requests do check it
    viewport: { width: 1000, height: 800 },
    locale: 'en-US',
  });
  contexts.push(context);
  t.after(() => context.close().catch(() => {}));
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  const rec = { requests: [], callbacks: [], documents: [], console: [] };
  page.on('request', (r) => {
    rec.requests.push({ url: r.url(), type: r.resourceType(), method: r.method() });
    if (new URL(r.url()).origin === REDIRECT.origin) rec.callbacks.push(r.url());
  });
  page.on('console', (m) => rec.console.push(`${m.type()}: ${m.text()}`));
  page.on('response', (r) => {
    if (r.request().resourceType() === 'document') rec.documents.push({ url: r.url(), status: r.status(), headers: r.headers() });
  });
  // A navigation straight to the redirect URI is answered here. Playwright does not hand the target of a
  // 302 to a route handler ("the handler will only be called for the first url if the response is a
  // redirect"), so the server's redirect is caught by followRedirect() below from the request Chromium makes.
  await page.route(`${REDIRECT.origin}/**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: '<!DOCTYPE html><title>callback</title><p>callback received</p>' }));
  return { context, page, rec };
}

async function shot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function expectLoginPage(page) {
  assert.equal((await page.locator('h1').first().textContent()).trim(), 'Sign in', 'login page heading');
  for (const sel of ['#username', '#password', '#otp', '#login']) {
    assert.equal(await page.locator(sel).count(), 1, `login page has ${sel}`);
    assert.ok(await page.locator(sel).isVisible(), `${sel} is visible`);
    assert.ok(await page.locator(sel).isEnabled(), `${sel} is enabled`);
  }
}

async function login(page, user, password, otp) {
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.fill('#otp', otp);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#login')]);
}

async function expectConsentPage(page, credentialID, digest) {
  const h1 = (await page.locator('h1').first().textContent()).trim();
  if (h1 !== 'Approve signing') {
    const err = (await page.locator('#error').count()) ? await page.locator('#error').textContent() : '(no #error)';
    assert.fail(`expected the consent page, got h1 ${JSON.stringify(h1)}, #error ${JSON.stringify(err?.trim())}`);
  }
  const cred = await page.locator('#credential').innerText(); // as shown: a <br> between id and description
  const esc = credentialID.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(cred, new RegExp(`(^|\\s)${esc}(\\s|$)`), '#credential shows the credential id');
  assert.equal((await page.locator('#numSignatures').textContent()).trim(), '1', '#numSignatures shows 1');
  const items = (await page.locator('ul#digests li').allTextContents()).map((s) => s.trim());
  assert.equal(items.length, 1, `ul#digests lists one digest: ${JSON.stringify(items)}`);
  const forms = [digest.toString('base64'), b64url(digest), digest.toString('hex'), digest.toString('hex').toUpperCase()];
  assert.ok(forms.some((f) => items[0].includes(f)), `ul#digests shows the digest (${forms[0]}): ${JSON.stringify(items[0])}`);
  // and in hex blocks a person can compare (issue 16)
  const hex = (await page.locator('ul#digests li code.hex').first().textContent()).trim();
  assert.equal(hex, digest.toString('hex').match(/.{4}/g).join(' '), 'the digest in blocks of 4 hex digits');
  for (const sel of ['#validity', '#subject']) assert.ok(await page.locator(sel).isVisible(), `consent page has ${sel}`);
  for (const sel of ['#approve', '#deny']) assert.ok(await page.locator(sel).isVisible(), `consent page has ${sel}`);
}

function onlyOwnOrigin(rec) {
  // Every request but the final navigation to the (intercepted) redirect URI goes to the service itself.
  const foreign = rec.requests.filter((r) => new URL(r.url).origin !== ORIGIN &&
    !(r.type === 'document' && new URL(r.url).origin === REDIRECT.origin && r.url.startsWith(E.CSC_OAUTH_REDIRECT_URI)));
  assert.deepEqual(foreign, [], 'requests that left the service');
}

function noCspViolations(rec) {
  const v = rec.console.filter((m) => /Content Security Policy/i.test(m));
  assert.deepEqual(v, [], 'CSP violations on the pages');
}

// Click a consent button and catch the request Chromium makes to the redirect URI: it must be the target
// of the server's 302 answer to the form. Nothing listens there, so the navigation itself ends in a
// connection error page, which is fine: the client's part is played by this test.
async function followRedirect(page, rec, selector) {
  let cb;
  try {
    [cb] = await Promise.all([
      page.waitForRequest((r) => r.url().startsWith(E.CSC_OAUTH_REDIRECT_URI), { timeout: 15000 }),
      page.click(selector),
    ]);
  } catch (e) {
    const h1 = await page.locator('h1').first().textContent({ timeout: 2000 }).catch(() => '(none)');
    throw new Error(`no request to the redirect URI after ${selector}: ${e.message.split('\n')[0]}; page ${page.url()} ` +
      `h1 ${JSON.stringify(h1)}; console: ${JSON.stringify(rec.console)}`);
  }
  const from = cb.redirectedFrom();
  assert.ok(from, `the redirect URI was reached by a redirect (${cb.url()})`);
  assert.equal(from.method(), 'POST');
  assert.equal(new URL(from.url()).origin, ORIGIN);
  const resp = await from.response();
  assert.ok(resp, 'the form POST got an answer');
  assert.equal(resp.status(), 302, 'the consent form answers 302');
  assert.equal(resp.headers().location, cb.url(), 'Location is where Chromium went');
  return cb.url();
}

function callbackParams(rec) {
  assert.equal(rec.callbacks.length, 1, `one redirect to the client: ${JSON.stringify(rec.callbacks)}`);
  const u = new URL(rec.callbacks[0]);
  assert.equal(`${u.origin}${u.pathname}`, E.CSC_OAUTH_REDIRECT_URI, 'redirected to the registered redirect URI');
  return u.searchParams;
}

// ---- tests ------------------------------------------------------------------------------------

test('TOTP helper: RFC 6238 vectors and oathtool agree', (t) => {
  const rfcKey = Buffer.from('12345678901234567890');
  // RFC 6238 appendix B (SHA-1, 8 digits) at T=59, 1111111109, 1234567890, 2000000000: the last 6 digits.
  assert.equal(totpAt(rfcKey, Math.floor(59 / 30), 8), '94287082');
  assert.equal(totpAt(rfcKey, Math.floor(1111111109 / 30)), '081804');
  assert.equal(totpAt(rfcKey, Math.floor(1234567890 / 30)), '005924');
  assert.equal(totpAt(rfcKey, Math.floor(2000000000 / 30)), '279037');
  let oath;
  try {
    oath = execFileSync('oathtool', ['--totp', '-b', '-N', '@1700000000', E.CSC_TOTP_SECRET], { encoding: 'utf8' }).trim();
  } catch {
    t.diagnostic('oathtool not found: checked against the RFC 6238 vectors only');
    return;
  }
  assert.equal(totpAt(base32Decode(E.CSC_TOTP_SECRET), Math.floor(1700000000 / 30)), oath);
});

test('happy path: login, consent with PIN, approve, token, signHash, signature verifies', { timeout: 120000 }, async (t) => {
  const { context, page, rec } = await openBrowser(t, 'happy');
  const a = newAuthorization(E.CSC_CRED2, 'happy path');

  const resp = await page.goto(a.url, { waitUntil: 'load' });
  await shot(page, 'happy-1-login');
  assert.equal(resp.status(), 200, 'GET /oauth2/authorize');
  await expectLoginPage(page);

  const cookies = await context.cookies(`${BASE}/oauth2/authorize`);
  assert.ok(cookies.length >= 1, 'the login page sets a cookie');
  for (const c of cookies) {
    assert.ok(c.secure, `cookie ${c.name} is Secure`);
    assert.ok(c.httpOnly, `cookie ${c.name} is HttpOnly`);
    assert.equal(c.sameSite, 'Strict', `cookie ${c.name} is SameSite=Strict`);
  }
  // the page in each language (issue 16): the switch shows the same request again, on a new sign-in page
  await shotLangs(page, 'oauth-login', 'サインイン');
  await expectLoginPage(page);

  await login(page, E.CSC_USER2, E.CSC_PASSWORD2, await freshOtp(E.CSC_USER2, E.CSC_TOTP_SECRET2));
  await shot(page, 'happy-2-consent');
  await expectConsentPage(page, E.CSC_CRED2, a.digest);
  // the consent in each language: its switch posts with the page's form token and shows the same consent
  await shotLangs(page, 'oauth-consent', '署名の承認');
  await expectConsentPage(page, E.CSC_CRED2, a.digest);

  assert.equal(await page.locator('#pin').count(), 1, 'the credential has a PIN: #pin is asked');
  await page.fill('#pin', E.CSC_PIN2);
  await followRedirect(page, rec, '#approve');
  const p = callbackParams(rec);
  assert.ok(p.get('code'), `a code in the redirect: ${rec.callbacks[0]}`);
  assert.equal(p.get('state'), a.state, 'state comes back unchanged');
  assert.equal(p.get('error'), null, 'no error in the redirect');

  // The client's side: the code for a token (client_secret_basic, PKCE verifier).
  const form = new URLSearchParams({ grant_type: 'authorization_code', code: p.get('code'), redirect_uri: E.CSC_OAUTH_REDIRECT_URI, code_verifier: a.verifier });
  const basic = Buffer.from(`${E.CSC_OAUTH_CLIENT_ID}:${E.CSC_OAUTH_CLIENT_SECRET}`).toString('base64');
  const tr = await request('POST', `${BASE}/oauth2/token`, {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${basic}` },
    body: form.toString(),
  });
  assert.equal(tr.status, 200, `token endpoint answered ${tr.status}: ${tr.body}`);
  const tok = JSON.parse(tr.body);
  assert.equal(typeof tok.access_token, 'string');
  assert.ok(tok.access_token.length > 0, 'access_token');
  assert.equal(tok.token_type, 'Bearer');
  assert.ok(Number.isInteger(tok.expires_in) && tok.expires_in > 0, `expires_in ${tok.expires_in}`);
  assert.equal(tok.scope, 'credential');
  assert.equal(tok.credentialID, E.CSC_CRED2);

  const sig = await cscCall('signatures/signHash',
    { credentialID: E.CSC_CRED2, hashes: [a.digest.toString('base64')], signAlgo: ECDSA_SHA256_OID }, tok.access_token);
  assert.ok(Array.isArray(sig.signatures) && sig.signatures.length === 1, `one signature: ${JSON.stringify(sig)}`);
  const info = await cscCall('credentials/info', { credentialID: E.CSC_CRED2 }, tok.access_token);
  const cert = new crypto.X509Certificate(Buffer.from(info.cert.certificates[0], 'base64'));
  const ok = crypto.verify('sha256', a.document, cert.publicKey, Buffer.from(sig.signatures[0], 'base64'));
  assert.ok(ok, `the signature verifies against ${cert.subject.replace(/\n/g, ', ')}`);

  onlyOwnOrigin(rec);
  noCspViolations(rec);
});

test('an error page in each language: an application the service does not know', { timeout: 60000 }, async (t) => {
  const { page } = await openBrowser(t, 'error');
  const resp = await page.goto(`${BASE}/oauth2/authorize?response_type=code&client_id=nobody`, { waitUntil: 'load' });
  assert.equal(resp.status(), 400);
  await shotLangs(page, 'oauth-error', '登録されていません');
});

test('deny on the consent page: error=access_denied to the redirect URI', { timeout: 150000 }, async (t) => {
  const { page, rec } = await openBrowser(t, 'deny');
  const a = newAuthorization(E.CSC_CRED_EC, 'deny');
  await page.goto(a.url, { waitUntil: 'load' });
  await expectLoginPage(page);
  await login(page, E.CSC_USER, E.CSC_PASSWORD, await freshOtp(E.CSC_USER, E.CSC_TOTP_SECRET));
  await shot(page, 'deny-1-consent');
  await expectConsentPage(page, E.CSC_CRED_EC, a.digest);
  await followRedirect(page, rec, '#deny');
  const p = callbackParams(rec);
  assert.equal(p.get('error'), 'access_denied', `error in ${rec.callbacks[0]}`);
  assert.equal(p.get('state'), a.state, 'state comes back unchanged');
  assert.equal(p.get('code'), null, 'no code after a denial');
  onlyOwnOrigin(rec);
  noCspViolations(rec);
});

test('wrong password: the error shows on the login page, which stays usable', { timeout: 150000 }, async (t) => {
  const { page, rec } = await openBrowser(t, 'wrongpw');
  const a = newAuthorization(E.CSC_CRED_EC, 'wrong password');
  await page.goto(a.url, { waitUntil: 'load' });
  await expectLoginPage(page);

  await login(page, E.CSC_USER, `${E.CSC_PASSWORD}-wrong`, await freshOtp(E.CSC_USER, E.CSC_TOTP_SECRET));
  await shot(page, 'wrongpw-1-error');
  await expectLoginPage(page);
  assert.equal(await page.locator('#error').count(), 1, 'an #error on the login page');
  assert.ok(await page.locator('#error').isVisible(), '#error is visible');
  const msg = (await page.locator('#error').textContent()).trim();
  assert.ok(msg.length > 0, '#error says something');
  assert.ok(!msg.includes(E.CSC_PASSWORD), 'the error does not echo the password');
  assert.equal(rec.callbacks.length, 0, 'no redirect to the client');

  // The same page, a second try with the right password and a fresh code, gets to the consent page.
  await login(page, E.CSC_USER, E.CSC_PASSWORD, await freshOtp(E.CSC_USER, E.CSC_TOTP_SECRET));
  await shot(page, 'wrongpw-2-consent-after-retry');
  await expectConsentPage(page, E.CSC_CRED_EC, a.digest);
  onlyOwnOrigin(rec);
  noCspViolations(rec);
});

test('the pages load nothing from elsewhere and carry a Content-Security-Policy', { timeout: 150000 }, async (t) => {
  const { page, rec } = await openBrowser(t, 'resources');
  const a = newAuthorization(E.CSC_CRED2, 'resources');
  await page.goto(a.url, { waitUntil: 'networkidle' });
  await expectLoginPage(page);
  // The error page variant of the login page, then the consent page (never approved: nothing leaves).
  // (A made-up code with the wrong password: it spends none of this user's codes.)
  await login(page, E.CSC_USER2, `${E.CSC_PASSWORD2}-wrong`, '000000');
  await page.waitForLoadState('networkidle');
  await login(page, E.CSC_USER2, E.CSC_PASSWORD2, await freshOtp(E.CSC_USER2, E.CSC_TOTP_SECRET2));
  await page.waitForLoadState('networkidle');
  await expectConsentPage(page, E.CSC_CRED2, a.digest);

  assert.ok(rec.requests.length >= 3, `requests recorded: ${rec.requests.length}`);
  const foreign = rec.requests.filter((r) => new URL(r.url).origin !== ORIGIN);
  assert.deepEqual(foreign, [], `every request goes to ${ORIGIN}`);
  assert.equal(rec.callbacks.length, 0);

  const pages = rec.documents.filter((d) => new URL(d.url).origin === ORIGIN);
  assert.equal(pages.length, 3, `three pages (login, login with error, consent): ${JSON.stringify(pages.map((d) => d.url))}`);
  for (const d of pages) {
    const csp = d.headers['content-security-policy'];
    assert.ok(csp && csp.trim().length > 0, `Content-Security-Policy on ${d.url.split('?')[0]} (status ${d.status})`);
  }
  console.log(`# Content-Security-Policy: ${pages[0].headers['content-security-policy']}`);
  console.log(`# requests: ${rec.requests.map((r) => `${r.method} ${r.type} ${r.url.split('?')[0]}`).join(' | ')}`);
  noCspViolations(rec);
});
