// Helpers of the page tests that tests/e2e/run runs (approve.test.mjs, enroll.test.mjs): the environment it
// exports, TOTP codes, HTTPS requests to the service, a headless Chromium and screenshots.
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { chromium } from 'playwright-core';

export function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is not set (run this through tests/e2e/run)`);
  return v;
}

export const ARTIFACTS = process.env.E2E_ARTIFACTS || path.resolve(import.meta.dirname ?? '.', '../artifacts/e2e');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function base32Bytes(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, value = 0;
  const out = [];
  for (const ch of s.toUpperCase().replace(/[\s=]/g, '')) {
    value = (value << 5) | alphabet.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// The TOTP code (RFC 6238, SHA-1, 6 digits, 30 s) of a base32 secret for one time step.
export function totp(secretB32, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac('sha1', base32Bytes(secretB32)).update(msg).digest();
  const off = h[h.length - 1] & 0x0f;
  const bin = ((h[off] & 0x7f) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3];
  return String(bin % 1e6).padStart(6, '0');
}

// The current 30-s step, once at least `margin` seconds of it are left.
export async function stepWithMargin(margin = 4) {
  for (;;) {
    const now = Date.now() / 1000;
    const step = Math.floor(now / 30);
    if (30 - (now - step * 30) >= margin) return step;
    await sleep(1000);
  }
}

export function request(ca, method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, ca, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`${method} ${url}: timeout`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// POST a CSC API method (JSON) with an Authorization header (auth, if given): { status, json }.
export async function cscPost(ca, cscUrl, method, body, auth) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) headers.Authorization = auth;
  const res = await request(ca, 'POST', `${cscUrl}/${method}`, { headers, body: JSON.stringify(body) });
  return { status: res.status, json: res.body ? JSON.parse(res.body) : null };
}

// A fresh headless Chromium profile under tmpRoot; closed when the test t ends. rec: the URLs it requested and
// what its console said.
export async function openBrowser(t, tmpRoot, name) {
  const context = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(tmpRoot, `${name}-`)), {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ignoreHTTPSErrors: true,
    viewport: { width: 1000, height: 900 }, locale: 'en-US',
  });
  t.after(() => context.close().catch(() => {}));
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  const rec = { requests: [], console: [] };
  page.on('request', (r) => rec.requests.push(r.url()));
  page.on('console', (m) => rec.console.push(`${m.type()}: ${m.text()}`));
  return { context, page, rec };
}

export async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

// The page in each language through its visible switch (#lang-ja, then #lang-en back): <name>-en.png and
// <name>-ja.png. The page must be one the switch shows again: a GET page, or the consent (its switch posts). Checks
// <html lang> and a Japanese text on the Japanese page; the page is in English again afterwards (the lang cookie
// says en).
export async function shotLangs(page, name, jaText) {
  const lang = async () => page.locator('html').getAttribute('lang');
  if ((await lang()) !== 'en') throw new Error(`${name}: the page is not in English before the switch`);
  await shot(page, `${name}-en`);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#lang-ja')]);
  if ((await lang()) !== 'ja') throw new Error(`${name}: the switch did not show the page in Japanese`);
  if (jaText && !(await page.locator('main').textContent()).includes(jaText))
    throw new Error(`${name}: no "${jaText}" on the Japanese page`);
  await shot(page, `${name}-ja`);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#lang-en')]);
  if ((await lang()) !== 'en') throw new Error(`${name}: the switch did not show the page in English again`);
}
