// End-to-end test of the account page's changes of factors (/account) in headless Debian Chromium, as the second
// demo user (CSC_USER2, its credential CSC_CRED2 with auth PIN; run last by tests/e2e/run: it changes the user's
// factors):
//
//   pin       the credential's PIN changed with the old one: the old PIN no longer authorizes, the new one does
//   password  the password changed with the old one: the old one no longer signs in, the new one does
//   totp      a code of the old app, the new secret's QR code shown once, a code of the new secret: replaced
// Each form and its success page is a screenshot (tests/artifacts/e2e/account-change-*.png).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { env, totp, stepWithMargin, request, openBrowser, shot, sleep } from './lib.mjs';

const E = {};
for (const k of ['CSC_URL', 'CSC_TLS_CA', 'CSC_USER2', 'CSC_PASSWORD2', 'CSC_CRED2', 'CSC_PIN2', 'CSC_TOTP_SECRET2']) {
  E[k] = env(k);
}
const BASE = E.CSC_URL.replace(/\/csc\/v2\/?$/, '');
const ORIGIN = new URL(BASE).origin;
const CA = fs.readFileSync(E.CSC_TLS_CA);
const SHA256_OID = '2.16.840.1.101.3.4.2.1';
const NEW_PIN = String(crypto.randomInt(10000000, 99999999));
const NEW_PASSWORD = `E2e-New-${crypto.randomBytes(9).toString('hex')}`;

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'csc-e2e-account-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

async function csc(method, body, auth) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) headers.Authorization = auth;
  const res = await request(CA, 'POST', `${E.CSC_URL}/${method}`, { headers, body: JSON.stringify(body) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : null };
}

async function login(password) {
  const basic = Buffer.from(`${E.CSC_USER2}:${password}`).toString('base64');
  return csc('auth/login', {}, `Basic ${basic}`);
}

async function authorize(bearer, pin) {
  const digest = crypto.createHash('sha256').update(`e2e account ${Date.now()}`).digest('base64');
  return csc('credentials/authorize', { credentialID: E.CSC_CRED2, numSignatures: 1, hashes: [digest],
    hashAlgorithmOID: SHA256_OID, authData: [{ id: 'PIN', value: pin }] }, `Bearer ${bearer}`);
}

function checkPage(resp, rec) {
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  assert.deepEqual(rec.requests.filter((u) => new URL(u).origin !== ORIGIN), [], 'requests that left the service');
  assert.deepEqual(rec.console.filter((m) => /Content Security Policy/i.test(m)), [], 'CSP violations');
}

async function click(page, selector) {
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click(selector)]);
  return resp;
}

// A step after `after` with a few seconds left (each step is accepted once per user).
async function stepAfter(after) {
  for (;;) {
    const step = await stepWithMargin();
    if (step > after) return step;
    await sleep(1000);
  }
}

test('account: PIN, password and TOTP secret changed by the user', { timeout: 300000 }, async (t) => {
  const { page, rec } = await openBrowser(t, tmpRoot, 'account-change');
  // the PIN and the password as they are before
  const before = await login(E.CSC_PASSWORD2);
  assert.equal(before.status, 200);
  const oldToken = before.json.access_token;

  checkPage(await page.goto(`${BASE}/account`, { waitUntil: 'load' }), rec);
  await page.fill('#username', E.CSC_USER2);
  await page.fill('#password', E.CSC_PASSWORD2);
  let step = await stepAfter(Math.floor(Date.now() / 30000)); // steps up to now may be spent by earlier pages
  await page.fill('#otp', totp(E.CSC_TOTP_SECRET2, step));
  checkPage(await click(page, '#login'), rec);
  assert.equal((await page.locator('#user').textContent()).trim(), E.CSC_USER2, 'signed in');

  // the PIN: the old one, the new one twice
  const form = page.locator('form', { has: page.locator(`input[value="${E.CSC_CRED2}"]`) });
  assert.equal(await form.locator('input[name="old_pin"]').count(), 1, 'a PIN that is set is changed with the old one');
  await form.locator('input[name="old_pin"]').fill(E.CSC_PIN2);
  await form.locator('input[name="pin"]').fill(NEW_PIN);
  await form.locator('input[name="pin2"]').fill(NEW_PIN);
  await shot(page, 'account-change-1-pin-form');
  checkPage(await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), form.locator('button').click()])
    .then((a) => a[0]), rec);
  assert.equal(await page.locator('#error').count(), 0, await page.content());
  assert.match(await page.locator('#note').textContent(), /The PIN is changed/);
  await shot(page, 'account-change-2-pin-changed');
  assert.equal((await authorize(oldToken, E.CSC_PIN2)).status, 400, 'the old PIN is refused');
  assert.equal((await authorize(oldToken, NEW_PIN)).status, 200, 'the new PIN authorizes');

  // the password: the old one, the new one twice
  await page.fill('#old_password', E.CSC_PASSWORD2);
  await page.fill('#new_password', NEW_PASSWORD);
  await page.fill('#new_password2', NEW_PASSWORD);
  await shot(page, 'account-change-3-password-form');
  checkPage(await click(page, '#change-password'), rec);
  assert.equal(await page.locator('#error').count(), 0, await page.content());
  assert.match(await page.locator('#note').textContent(), /The password is changed/);
  await shot(page, 'account-change-4-password-changed');
  assert.equal((await login(E.CSC_PASSWORD2)).status, 400, 'the old password no longer signs in');
  assert.equal((await login(NEW_PASSWORD)).status, 200, 'the new one does');
  assert.equal((await csc('credentials/list', {}, `Bearer ${oldToken}`)).status, 401, 'the old token is revoked');

  // the TOTP secret: a code of the old app, then the new secret and a code of it
  step = await stepAfter(step);
  await page.fill('#totp_old', totp(E.CSC_TOTP_SECRET2, step));
  await shot(page, 'account-change-5-totp-form');
  checkPage(await click(page, '#totp-begin'), rec);
  assert.equal(await page.locator('#error').count(), 0, await page.content());
  const secret = (await page.locator('#totp-secret').textContent()).trim();
  assert.match(secret, /^[A-Z2-7]{16,}$/);
  assert.notEqual(secret, E.CSC_TOTP_SECRET2);
  assert.equal(await page.locator('#totp-qr').count(), 1, 'the QR code is drawn on the page');
  await shot(page, 'account-change-6-totp-new-secret');
  step = await stepAfter(step);
  await page.fill('#totp_new', totp(secret, step));
  checkPage(await click(page, '#totp-finish'), rec);
  assert.equal(await page.locator('#error').count(), 0, await page.content());
  assert.match(await page.locator('#note').textContent(), /The new secret is in use/);
  await shot(page, 'account-change-7-totp-changed');
});
