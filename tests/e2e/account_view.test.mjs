// End-to-end test of /account's backups, restore conditions and requests, last sign-ins and last signatures in
// headless Debian Chromium.
//
// Run by tests/e2e/run, which (for this page) configures key_backup = wrapped, creates the HSM backup keys and a
// credential E2E_VIEW_CRED (auth PIN) of the demo user before the server starts; its PIN (CSC_PIN) is set at the demo
// user's enrollment.
//
//   account_view  the operator backs the credential up; the user signs in through the API and signs twice; on
//                 /account (password + TOTP) the backups table shows the backup and the conditions, the sign-ins and
//                 signatures tables what happened; "Request a restore of this key" answers a reference RR-...
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { env, totp, stepWithMargin, sleep, cscPost, openBrowser, shot, shotLangs } from './lib.mjs';

const E = {};
for (const k of ['CSC_URL', 'CSC_TLS_CA', 'CSC_CONFIG', 'CSC_ADMIN_SESSION', 'CSC_USER', 'CSC_PASSWORD', 'CSC_PIN',
  'CSC_TOTP_SECRET', 'E2E_ADMIN', 'E2E_VIEW_CRED']) {
  E[k] = env(k);
}
const BASE = E.CSC_URL.replace(/\/csc\/v2\/?$/, '');
const ORIGIN = new URL(BASE).origin;
const CA = fs.readFileSync(E.CSC_TLS_CA);
const SHA256_OID = '2.16.840.1.101.3.4.2.1';
const ECDSA_SHA256 = '1.2.840.10045.4.3.2';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'csc-e2e-view-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const csc = (method, body, auth) => cscPost(CA, E.CSC_URL, method, body, auth);

async function sign(bearer, n) {
  const hashes = [...Array(n).keys()].map((i) => crypto.createHash('sha256').update(`e2e view ${i} ${Date.now()}`)
    .digest('base64'));
  const a = await csc('credentials/authorize', { credentialID: E.E2E_VIEW_CRED, numSignatures: n, hashes,
    hashAlgorithmOID: SHA256_OID, authData: [{ id: 'PIN', value: E.CSC_PIN }] }, `Bearer ${bearer}`);
  assert.equal(a.status, 200, `authorize: ${JSON.stringify(a.json)}`);
  const s = await csc('signatures/signHash', { credentialID: E.E2E_VIEW_CRED, SAD: a.json.SAD, hashes,
    signAlgo: ECDSA_SHA256 }, `Bearer ${bearer}`);
  assert.equal(s.status, 200, `signHash: ${JSON.stringify(s.json)}`);
}

function checkPage(resp, rec) {
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  assert.deepEqual(rec.requests.filter((u) => new URL(u).origin !== ORIGIN), [], 'requests that left the service');
  assert.deepEqual(rec.console.filter((m) => /Content Security Policy/i.test(m)), [], 'CSP violations');
}

test('account view: backups, a restore request, sign-ins and signatures', { timeout: 180000 }, async (t) => {
  const first = await stepWithMargin();
  const file = path.join(tmpRoot, 'view.bkp');
  execFileSync(E.E2E_ADMIN, ['-c', E.CSC_CONFIG, 'credential', 'backup', E.E2E_VIEW_CRED, file],
    { env: { ...process.env, CSC_ADMIN_SESSION: E.CSC_ADMIN_SESSION }, stdio: ['ignore', 'ignore', 'inherit'] });
  const basic = Buffer.from(`${E.CSC_USER}:${E.CSC_PASSWORD}`).toString('base64');
  const wrong = Buffer.from(`${E.CSC_USER}:not-the-password`).toString('base64');
  assert.notEqual((await csc('auth/login', {}, `Basic ${wrong}`)).status, 200);
  const login = await csc('auth/login', {}, `Basic ${basic}`);
  assert.equal(login.status, 200);
  await sign(login.json.access_token, 2);
  await sign(login.json.access_token, 1);

  const { page, rec } = await openBrowser(t, tmpRoot, 'account-view');
  checkPage(await page.goto(`${BASE}/account`, { waitUntil: 'load' }), rec);
  await page.fill('#username', E.CSC_USER);
  await page.fill('#password', E.CSC_PASSWORD);
  let step = await stepWithMargin();
  while (step <= first) { // a step nobody used: enroll-demo's came before this test
    await sleep(1000);
    step = await stepWithMargin();
  }
  await page.fill('#otp', totp(E.CSC_TOTP_SECRET, step));
  checkPage(await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#login')]).then((a) => a[0]),
    rec);
  assert.equal((await page.locator('#user').textContent()).trim(), E.CSC_USER, 'signed in');

  const backup = page.locator(`tr#backup-${E.E2E_VIEW_CRED}`);
  assert.match(await backup.locator('td.backupable').textContent(), /^yes/);
  assert.match(await backup.locator('td.backups').textContent(), /^1, the last on \d{4}-\d\d-\d\d/);
  assert.match(await page.locator('#restore-rules').textContent(), /only on your own request/);
  const signins = page.locator('#signins tr.signin');
  assert.match(await signins.nth(0).textContent(), /web page.*ok/);
  assert.match(await signins.nth(1).textContent(), /API \(auth\/login\).*ok/);
  assert.match(await signins.nth(2).textContent(), /API \(auth\/login\).*refused/);
  const sigs = page.locator('#signatures tr.signature', { hasText: E.E2E_VIEW_CRED });
  assert.equal(await sigs.count(), 2);
  assert.equal((await sigs.nth(0).locator('td.count').textContent()).trim(), '1');
  assert.equal((await sigs.nth(1).locator('td.count').textContent()).trim(), '2');
  await shot(page, 'account-view-1-sections');
  await shotLangs(page, 'account-view', '鍵のバックアップ'); // the sections in each language (issue 16)

  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), backup.locator('button.restore').click()]);
  assert.equal(await page.locator('#error').count(), 0);
  const note = await page.locator('#note').textContent();
  const m = note.match(/Your restore request is (RR-[A-Z2-9]{12})\./);
  assert.ok(m, note);
  assert.equal(await page.locator(`tr#request-${m[1]}`).count(), 1, 'the request is listed');
  await shot(page, 'account-view-2-restore-requested');
});
