// End-to-end test of the approval page (/approve) in headless Debian Chromium (playwright-core).
//
// Run by tests/e2e/run, which also creates the credential E2E_APPROVE_CRED (auth "PIN AND APPROVAL", owner
// CSC_USER) before the server starts.
//
//   approve   credentials/authorize -> 202 + handle; authorizeCheck -> 202; the user signs in on /approve
//             (password + TOTP), sees the request (credential, 1 signature, the digest), types the PIN and
//             approves -> authorizeCheck gives the SAD once -> signHash -> the signature verifies
//   refuse    the same, refused on the page -> authorizeCheck answers invalid_authentication_data
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { env, totp, sleep, request as requestWith, openBrowser as openIn, shot, shotLangs } from './lib.mjs';

const E = {};
for (const k of ['CSC_URL', 'CSC_TLS_CA', 'CSC_USER', 'CSC_PASSWORD', 'CSC_PIN', 'CSC_TOTP_SECRET', 'E2E_APPROVE_CRED']) {
  E[k] = env(k);
}
const BASE = E.CSC_URL.replace(/\/csc\/v2\/?$/, '');
const ORIGIN = new URL(BASE).origin;
const CA = fs.readFileSync(E.CSC_TLS_CA);
const SHA256_OID = '2.16.840.1.101.3.4.2.1';
const ECDSA_SHA256_OID = '1.2.840.10045.4.3.2';

// The server accepts each time step once per user, and other test files (own processes) log the same user in:
// every login here waits for a step that starts after this process did, and is not about to end.
let lastStep = Math.floor(Date.now() / 30000);
async function freshOtp() {
  for (;;) {
    const now = Date.now() / 1000;
    const step = Math.floor(now / 30);
    if (step > lastStep && 30 - (now - step * 30) >= 4) {
      lastStep = step;
      return totp(E.CSC_TOTP_SECRET, step);
    }
    await sleep(1000);
  }
}

const request = (method, url, opts) => requestWith(CA, method, url, opts);

async function csc(method, body, bearer) {
  const headers = { 'Content-Type': 'application/json' };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const res = await request('POST', `${E.CSC_URL}/${method}`, { headers, body: JSON.stringify(body) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : null };
}

async function token() {
  const basic = Buffer.from(`${E.CSC_USER}:${E.CSC_PASSWORD}`).toString('base64');
  const res = await request('POST', `${E.CSC_URL}/auth/login`, {
    headers: { 'Content-Type': 'application/json', Authorization: `Basic ${basic}` }, body: '{}' });
  assert.equal(res.status, 200, `auth/login: ${res.body}`);
  return JSON.parse(res.body).access_token;
}

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'csc-e2e-approve-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const openBrowser = (t, name) => openIn(t, tmpRoot, name);

// authorize for one signature over a fresh document: 202 + handle, still pending.
async function pendingRequest(bearer, label) {
  const document = Buffer.from(`Document approved on /approve (${label}) at ${new Date().toISOString()}\n`);
  const digest = crypto.createHash('sha256').update(document).digest();
  const r = await csc('credentials/authorize', { credentialID: E.E2E_APPROVE_CRED, numSignatures: 1,
    hashes: [digest.toString('base64')], hashAlgorithmOID: SHA256_OID }, bearer);
  assert.equal(r.status, 202, `authorize: ${JSON.stringify(r.json)}`);
  assert.ok(r.json.handle, 'a handle');
  const c = await csc('credentials/authorizeCheck', { handle: r.json.handle }, bearer);
  assert.equal(c.status, 202, 'pending before the user decided');
  return { document, digest, handle: r.json.handle };
}

// Sign in on /approve and return the section of the request showing digest.
async function signInAndFind(page, digest) {
  const resp = await page.goto(`${BASE}/approve`, { waitUntil: 'load' });
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  await page.fill('#username', E.CSC_USER);
  await page.fill('#password', E.CSC_PASSWORD);
  await page.fill('#otp', await freshOtp());
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#login')]);
  assert.equal((await page.locator('#user').textContent()).trim(), E.CSC_USER, 'signed in');
  const section = page.locator('section.req', { has: page.locator('code.digest', { hasText: digest.toString('base64') }) });
  assert.equal(await section.locator('code.hex', { hasText: digest.toString('hex').match(/.{4}/g).join(' ') }).count(), 1,
    'the digest in blocks of 4 hex digits');
  assert.equal(await section.count(), 1, 'the request is listed with its digest');
  assert.equal((await section.locator('td.cred').textContent()).trim(), E.E2E_APPROVE_CRED);
  assert.equal((await section.locator('td.num').textContent()).trim(), '1');
  return section;
}

test('approve on the page: authorizeCheck gives the SAD once, the signature verifies', { timeout: 120000 }, async (t) => {
  const bearer = await token();
  const req = await pendingRequest(bearer, 'approve');
  const { context, page, rec } = await openBrowser(t, 'approve');
  const section = await signInAndFind(page, req.digest);
  const cookies = await context.cookies(`${BASE}/approve`);
  for (const c of cookies) {
    assert.ok(c.secure && c.httpOnly && c.sameSite === 'Strict', `cookie ${c.name} is Secure, HttpOnly, Strict`);
  }
  await shot(page, 'approve-1-list');
  await shotLangs(page, 'approve', '署名要求の承認'); // the list in each language (issue 16)
  assert.ok(await section.locator('.pin-tries').isVisible(), 'the PIN tries left are shown');
  await section.locator('input[name="pin"]').fill(E.CSC_PIN);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), section.locator('button.approve').click()]);
  await shot(page, 'approve-2-approved');
  assert.match(await page.locator('#note').textContent(), /Approved/);

  const c = await csc('credentials/authorizeCheck', { handle: req.handle }, bearer);
  assert.equal(c.status, 200, `authorizeCheck: ${JSON.stringify(c.json)}`);
  assert.ok(c.json.SAD);
  const again = await csc('credentials/authorizeCheck', { handle: req.handle }, bearer);
  assert.equal(again.status, 400, 'the SAD is given once');

  const s = await csc('signatures/signHash', { credentialID: E.E2E_APPROVE_CRED, SAD: c.json.SAD,
    hashes: [req.digest.toString('base64')], signAlgo: ECDSA_SHA256_OID }, bearer);
  assert.equal(s.status, 200, `signHash: ${JSON.stringify(s.json)}`);
  const info = await csc('credentials/info', { credentialID: E.E2E_APPROVE_CRED }, bearer);
  const cert = new crypto.X509Certificate(Buffer.from(info.json.cert.certificates[0], 'base64'));
  assert.ok(crypto.verify('sha256', req.document, cert.publicKey, Buffer.from(s.json.signatures[0], 'base64')),
    'the signature verifies over the document');
  assert.deepEqual(rec.requests.filter((u) => new URL(u).origin !== ORIGIN), [], 'requests that left the service');
  assert.deepEqual(rec.console.filter((m) => /Content Security Policy/i.test(m)), [], 'CSP violations');
});

test('refuse on the page: authorizeCheck answers invalid_authentication_data', { timeout: 120000 }, async (t) => {
  const bearer = await token();
  const req = await pendingRequest(bearer, 'refuse');
  const { page } = await openBrowser(t, 'refuse');
  const section = await signInAndFind(page, req.digest);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), section.locator('button.refuse').click()]);
  await shot(page, 'approve-3-refused');
  assert.match(await page.locator('#note').textContent(), /Refused/);
  const c = await csc('credentials/authorizeCheck', { handle: req.handle }, bearer);
  assert.equal(c.status, 400);
  assert.equal(c.json.error, 'invalid_authentication_data');
});
