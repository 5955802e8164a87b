// End-to-end test of enrollment (/enroll) and of the account page (/account) in headless Debian Chromium.
//
// Run by tests/e2e/run, which registers E2E_ENROLL_USER before the server starts (`csc-admin user add --letter`:
// the code it printed is E2E_ENROLL_CODE) with a credential E2E_ENROLL_CRED (auth PIN) waiting for the user's PIN.
//
//   enroll    /enroll step 1 (name and code) -> step 2 (the TOTP QR code and secret; password twice, the first
//             code from the app, the credential's PIN twice) -> enrolled: the password signs in, the PIN
//             authorizes, and the code is spent
//   account   a credential created after the enrollment (csc-admin, PIN unset: not signable) gets its PIN on
//             /account, signed in with password + TOTP; then it authorizes
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { env, totp, stepWithMargin, request, openBrowser, shot, shotLangs } from './lib.mjs';

const E = {};
for (const k of ['CSC_URL', 'CSC_TLS_CA', 'CSC_CONFIG', 'CSC_ADMIN_SESSION', 'E2E_ADMIN', 'E2E_ENROLL_USER',
  'E2E_ENROLL_CODE', 'E2E_ENROLL_CRED']) {
  E[k] = env(k);
}
const BASE = E.CSC_URL.replace(/\/csc\/v2\/?$/, '');
const ORIGIN = new URL(BASE).origin;
const CA = fs.readFileSync(E.CSC_TLS_CA);
const SHA256_OID = '2.16.840.1.101.3.4.2.1';
// What the user chooses on /enroll (random per run; the password meets the default rules: 12+, 2 classes).
const PASSWORD = `E2e-${crypto.randomBytes(9).toString('hex')}`;
const PIN = String(crypto.randomInt(10000000, 99999999));
const LATER_CRED = `${E.E2E_ENROLL_CRED}-later`;
const LATER_PIN = String(crypto.randomInt(10000000, 99999999));
const state = { secret: null, lastStep: 0 };

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'csc-e2e-enroll-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

async function csc(method, body, auth) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) headers.Authorization = auth;
  const res = await request(CA, 'POST', `${E.CSC_URL}/${method}`, { headers, body: JSON.stringify(body) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : null };
}

async function token() {
  const basic = Buffer.from(`${E.E2E_ENROLL_USER}:${PASSWORD}`).toString('base64');
  const r = await csc('auth/login', {}, `Basic ${basic}`);
  assert.equal(r.status, 200, `auth/login: ${JSON.stringify(r.json)}`);
  return r.json.access_token;
}

async function authorize(bearer, cred, pin) {
  const digest = crypto.createHash('sha256').update(`e2e ${cred} ${Date.now()}`).digest('base64');
  return csc('credentials/authorize', { credentialID: cred, numSignatures: 1, hashes: [digest],
    hashAlgorithmOID: SHA256_OID, authData: [{ id: 'PIN', value: pin }] }, `Bearer ${bearer}`);
}

function checkPage(resp, rec) {
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  assert.deepEqual(rec.requests.filter((u) => new URL(u).origin !== ORIGIN), [], 'requests that left the service');
  assert.deepEqual(rec.console.filter((m) => /Content Security Policy/i.test(m)), [], 'CSP violations');
}

async function submit(page, value) {
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }),
    page.click(`button[name="action"][value="${value}"]`)]);
  return resp;
}

test('enroll: the code, then password, TOTP and the PIN of the waiting credential', { timeout: 120000 }, async (t) => {
  const { context, page, rec } = await openBrowser(t, tmpRoot, 'enroll');
  checkPage(await page.goto(`${BASE}/enroll`, { waitUntil: 'load' }), rec);
  await shotLangs(page, 'enroll', '利用者登録'); // step 1 in each language (issue 16)
  await page.fill('input[name="name"]', E.E2E_ENROLL_USER);
  await page.fill('input[name="code"]', E.E2E_ENROLL_CODE.toLowerCase()); // the code is read case-insensitively
  await shot(page, 'enroll-1-code');
  checkPage(await submit(page, 'code'), rec);

  // step 2: the QR code and the secret for manual entry, shown only here
  const secret = (await page.locator('#totp-secret').textContent()).trim();
  assert.match(secret, /^[A-Z2-7]{16,}$/);
  assert.ok(await page.locator('svg').count() >= 1, 'the QR code is drawn on the page');
  assert.match(await page.content(), /otpauth:\/\/totp\//);
  for (const c of await context.cookies(`${BASE}/enroll`)) {
    // the language choice (shotLangs above) is no secret and must reach a page opened from another site: Lax
    if (c.name === 'lang') assert.ok(c.secure && c.httpOnly && c.sameSite === 'Lax', 'cookie lang is Secure, HttpOnly, Lax');
    else assert.ok(c.secure && c.httpOnly && c.sameSite === 'Strict', `cookie ${c.name} is Secure, HttpOnly, Strict`);
  }
  assert.equal(await page.locator(`input[name="pin_${E.E2E_ENROLL_CRED}"]`).count(), 1, 'the credential waits');
  await shot(page, 'enroll-2-totp');
  await page.fill('input[name="password"]', PASSWORD);
  await page.fill('input[name="password2"]', PASSWORD);
  // the code of the step before (a window of one step accepts it): /account signs in with the current one
  const step = (await stepWithMargin()) - 1;
  await page.fill('input[name="otp"]', totp(secret, step));
  await page.fill(`input[name="pin_${E.E2E_ENROLL_CRED}"]`, PIN);
  await page.fill(`input[name="pin2_${E.E2E_ENROLL_CRED}"]`, PIN);
  checkPage(await submit(page, 'finish'), rec);
  await shot(page, 'enroll-3-enrolled');
  assert.match(await page.locator('#note').textContent(), /You are enrolled/);
  assert.equal(await page.locator('#error').count(), 0);
  state.secret = secret;
  state.lastStep = step;

  // the user's own factors work; the code is spent
  const r = await authorize(await token(), E.E2E_ENROLL_CRED, PIN);
  assert.equal(r.status, 200, `authorize: ${JSON.stringify(r.json)}`);
  checkPage(await page.goto(`${BASE}/enroll`, { waitUntil: 'load' }), rec);
  await page.fill('input[name="name"]', E.E2E_ENROLL_USER);
  await page.fill('input[name="code"]', E.E2E_ENROLL_CODE);
  await submit(page, 'code');
  assert.equal(await page.locator('#totp-secret').count(), 0, 'a spent code opens nothing');
  assert.ok(await page.locator('#error').count() === 1, 'the page says the code is wrong');
});

test('account: a credential created later gets its PIN on /account', { timeout: 120000 }, async (t) => {
  assert.ok(state.secret, 'the enrollment test ran first');
  execFileSync(E.E2E_ADMIN, ['-c', E.CSC_CONFIG, 'credential', 'create', '--id', LATER_CRED, '--user',
    E.E2E_ENROLL_USER, '--key', 'p256', '--auth', 'PIN', '--scal', '2', '--multisign', '5'],
  { env: { ...process.env, CSC_ADMIN_SESSION: E.CSC_ADMIN_SESSION }, stdio: ['ignore', 'ignore', 'inherit'] });
  const bearer = await token();
  assert.equal((await authorize(bearer, LATER_CRED, LATER_PIN)).status, 400, 'no PIN yet: not signable');

  const { page, rec } = await openBrowser(t, tmpRoot, 'account');
  checkPage(await page.goto(`${BASE}/account`, { waitUntil: 'load' }), rec);
  await page.fill('#username', E.E2E_ENROLL_USER);
  await page.fill('#password', PASSWORD);
  let step = await stepWithMargin();
  while (step <= state.lastStep) { // each step once per user: the enrollment used one
    await new Promise((r) => setTimeout(r, 1000));
    step = await stepWithMargin();
  }
  await page.fill('#otp', totp(state.secret, step));
  checkPage(await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#login')]).then((a) => a[0]), rec);
  assert.equal((await page.locator('#user').textContent()).trim(), E.E2E_ENROLL_USER, 'signed in');
  const row = page.locator(`tr#cred-${LATER_CRED}`);
  assert.equal(await row.count(), 1, 'the new credential is listed');
  assert.equal(await page.locator(`tr#cred-${E.E2E_ENROLL_CRED}`).count(), 1, 'and the enrolled one');
  const form = page.locator('form', { has: page.locator(`input[value="${LATER_CRED}"]`) });
  assert.equal(await form.count(), 1, 'a PIN form for the credential without a PIN');
  await shot(page, 'account-1-signed-in');
  await shotLangs(page, 'account', 'アカウント'); // the account page in each language (issue 16)
  await form.locator('input[name="pin"]').fill(LATER_PIN);
  await form.locator('input[name="pin2"]').fill(LATER_PIN);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), form.locator('button').click()]);
  await shot(page, 'account-2-pin-set');
  assert.equal(await page.locator('#error').count(), 0);
  const after = page.locator('form', { has: page.locator(`input[value="${LATER_CRED}"]`) });
  assert.equal(await after.locator('button.set-pin').count(), 0, 'no form that sets the PIN any more');
  assert.equal(await after.locator('input[name="old_pin"]').count(), 1, 'but one that changes it with the old one');
  const r = await authorize(bearer, LATER_CRED, LATER_PIN);
  assert.equal(r.status, 200, `authorize: ${JSON.stringify(r.json)}`);
});
