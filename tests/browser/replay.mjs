// The replay page in Debian's Chromium, driven by playwright-core: sign in, search by
// confirmation number, open the record, play, seek to consent events, export the zip, sign out.
//
// Run by tests/api/browser.rs with the server's address and a record it made:
//   CALLPROOF_URL, CALLPROOF_KEY, CALLPROOF_RECORD_ID, CALLPROOF_CONFIRMATION_NUMBER,
//   CALLPROOF_PLAY_REASON, CALLPROOF_EXPORT_REASON, CALLPROOF_ARTEFACTS (screenshots, the zip),
//   CALLPROOF_MISSING_ID and CALLPROOF_MISSING_NUMBER (a record deleted from the store after indexing),
//   and CALLPROOF_HOSTILE_TEXT, markup the record holds as its customer name.
// Exits 0 when every step held; otherwise prints the step that failed and exits 1.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set: run this through \`cargo test --test api browser\``);
    process.exit(2);
  }
  return v;
}

const base = need('CALLPROOF_URL').replace(/\/$/, '');
const key = need('CALLPROOF_KEY');
const recordId = need('CALLPROOF_RECORD_ID');
const number = need('CALLPROOF_CONFIRMATION_NUMBER');
const playReason = need('CALLPROOF_PLAY_REASON');
const exportReason = need('CALLPROOF_EXPORT_REASON');
const artefacts = need('CALLPROOF_ARTEFACTS');
/** A record the search index holds but the store no longer does, and its confirmation number. */
const missingId = need('CALLPROOF_MISSING_ID');
const missingNumber = need('CALLPROOF_MISSING_NUMBER');
/** Markup in the record's customer name, with an element id `xss-name`: shown as text. */
const hostile = process.env.CALLPROOF_HOSTILE_TEXT || '';
const chromiumPath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
/** How far the player may be from a consent event's offset after a seek, in seconds. */
const TOLERANCE = 0.5;

fs.mkdirSync(artefacts, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'callproof-chromium-'));

let step = 'start';
const problems = [];
function check(cond, what) {
  if (!cond) throw new Error(`${step}: ${what}`);
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1200, height: 900 },
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
    '--use-fake-device-for-media-stream',
  ],
});

const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(20000);
page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() === 'error' && /Content Security Policy|Trusted Type|Refused to/i.test(m.text())) {
    problems.push(`policy violation: ${m.text()}`);
  }
});

async function shot(name) {
  await page.screenshot({ path: path.join(artefacts, `${name}.png`), fullPage: true });
}

/** No customer phone number or name in the title, nor a phone in the address. */
async function privacy() {
  const title = await page.title();
  check(!/\+?\d[\d ()-]{7,}\d/.test(title.replace(number, '')), `a phone number in the title "${title}"`);
  check(!/Dana|Reyes/.test(title), `a customer name in the title "${title}"`);
  check(!/phone=/.test(page.url()), `a phone number in the address ${page.url()}`);
}

/** Every form control on the page has a label a screen reader reads. */
async function labelled() {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button, audio, canvas')]
      .filter((el) => !el.closest('[hidden]') && el.type !== 'hidden')
      .filter((el) => {
        if (el.getAttribute('aria-label')) return false;
        if (el.labels && el.labels.length) return false;
        if ((el.tagName === 'BUTTON') && el.textContent.trim()) return false;
        return true;
      })
      .map((el) => el.outerHTML.slice(0, 120))
  );
  check(unlabelled.length === 0, `controls without a label: ${unlabelled.join(', ')}`);
}

/** Every visible text on the page has a contrast of at least 4.5:1 with what is behind it. */
async function contrast() {
  const low = await page.evaluate(() => {
    const parse = (c) => {
      const m = (c.match(/[\d.]+/g) || ['0', '0', '0', '0']).map(Number);
      return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const behind = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c.a > 0.5) return c;
      }
      return { r: 255, g: 255, b: 255 };
    };
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
      if (!el.getClientRects().length) continue;
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own && !['INPUT', 'SELECT', 'BUTTON'].includes(el.tagName)) continue;
      const a = lum(parse(getComputedStyle(el).color));
      const b = lum(behind(el));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) out.push(`${ratio.toFixed(2)}:1 for "${el.textContent.trim().slice(0, 40)}"`);
    }
    return out;
  });
  check(low.length === 0, `text below 4.5:1 contrast: ${low.join('; ')}`);
}

/** Waits for the player to settle after a seek; answers its position. */
async function positionAfterSeek() {
  await page.waitForFunction(() => {
    const a = document.querySelector('audio');
    return a && a.readyState >= 1 && !a.seeking;
  });
  return page.evaluate(() => document.querySelector('audio').currentTime);
}

/** Moves the player far from `offset` (to its end or start) and pauses it. */
async function moveAway(offset) {
  const at = await page.evaluate((offset) => {
    const a = document.querySelector('audio');
    a.pause();
    a.currentTime = offset > a.duration / 2 ? 0 : Math.max(0, a.duration - 0.05);
    return a.currentTime;
  }, offset);
  await positionAfterSeek();
  return at;
}

try {
  step = 'sign-in page';
  await page.goto(`${base}/ui/`);
  const keyField = page.getByLabel('API key');
  await keyField.waitFor();
  check((await keyField.getAttribute('type')) === 'password', 'the key field is a password field');
  check((await keyField.getAttribute('autocomplete')) === 'off', 'the key field has autocomplete="off"');
  await labelled();
  await shot('sign-in');

  step = 'a key callproof does not know is refused on the form';
  await keyField.fill('not-a-configured-key-0000');
  await keyField.press('Enter');
  await page.getByText('Not signed in:').waitFor();
  check(!(await page.getByText('Signed in as').isVisible()), 'no session for an unknown key');

  step = 'sign in';
  await keyField.fill(key);
  await keyField.press('Enter');
  await page.getByText('Signed in as').waitFor();
  check(!page.url().includes(key), 'the key is not in the address');
  await shot('signed-in');

  step = 'a record missing from the store is named by its state, not shown as an empty row';
  await page.getByLabel('Confirmation number').fill(missingNumber);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const missingRow = page.locator('#results tbody tr', { hasText: 'missing from the store' });
  await missingRow.waitFor();
  const missingText = await missingRow.innerText();
  check(missingText.includes(missingId), `the row names the record ${missingId}: "${missingText}"`);
  check(missingText.includes('callproof records verify'), `the row says what to do: "${missingText}"`);
  const missingRows = await page.locator('#results tbody tr').count();
  check(missingRows === 1, `one result for ${missingNumber}, not ${missingRows}`);
  await shot('missing-record');

  step = 'search by confirmation number';
  await page.getByLabel('Confirmation number').fill(number);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const result = page.getByRole('link', { name: number, exact: true });
  await result.waitFor();
  check(new URL(page.url()).searchParams.get('confirmation_number') === number, `the search is in the address: ${page.url()}`);
  const rows = await page.locator('#results tbody tr').count();
  check(rows === 1, `one result for ${number}, not ${rows}`);
  await privacy();
  await labelled();
  await contrast();
  await shot('search-results');

  step = 'open the record';
  await result.click();
  await page.waitForURL(`${base}/ui/records/${recordId}`);
  await page.getByRole('heading', { level: 1, name: `Record ${number}` }).waitFor();
  await page.getByText('Verified.').waitFor();
  const markers = page.locator('button[data-offset-secs]');
  const count = await markers.count();
  check(count === 2, `two consent markers, not ${count}`);
  await page.waitForFunction(() => !document.body.textContent.includes('Loading the waveform'));
  check(!(await page.getByText('The waveform is unavailable').isVisible()), 'the waveform loaded');
  const canvases = await page.locator('canvas.wave').count();
  check(canvases === 2, `a waveform for each of the two channels, not ${canvases}`);
  await privacy();
  await labelled();
  await contrast();
  if (hostile) {
    const shown = await page.evaluate((t) => document.body.textContent.includes(t), hostile);
    check(shown, `the customer name "${hostile}" is shown as text`);
  }
  const injected = await page.evaluate(() => document.querySelectorAll('#xss-name, #xss-label').length + (window.xss ? 1 : 0));
  check(injected === 0, 'markup from the record became elements or ran');
  await shot('record');

  step = 'a consent marker before playback asks for the reason';
  const first = markers.nth(0);
  const firstOffset = Number(await first.getAttribute('data-offset-secs'));
  check(Number.isFinite(firstOffset), 'the marker has a numeric offset');
  await first.click();
  const reasonField = page.getByLabel('Reason for listening');
  await reasonField.waitFor();
  check(await reasonField.evaluate((el) => el === document.activeElement), 'the reason field has the focus');
  check(await page.evaluate(() => !document.querySelector('audio').getAttribute('src')), 'no audio before a reason is given');
  await page.getByText('Reasons are kept for the retention of the audit log').first().waitFor();

  step = 'play the audio';
  await reasonField.fill(playReason);
  await page.getByRole('button', { name: 'Play recording' }).click();
  await page.waitForFunction(() => {
    const a = document.querySelector('audio');
    return a && !a.hidden && a.getAttribute('src') && a.readyState >= 1;
  });
  const started = await positionAfterSeek();
  check(Math.abs(started - firstOffset) <= TOLERANCE, `playback starts at the marker's ${firstOffset} s, not ${started} s`);
  // It plays: the position moves on (or the short recording reaches its end).
  await page.waitForFunction(
    (from) => {
      const a = document.querySelector('audio');
      return a.ended || a.currentTime > from + 0.2;
    },
    started,
    { timeout: 10000 }
  );

  step = 'click a consent marker';
  for (const [i, how] of [
    [0, 'mouse'],
    [1, 'keyboard'],
  ]) {
    const marker = markers.nth(i);
    const offset = Number(await marker.getAttribute('data-offset-secs'));
    const away = await moveAway(offset);
    check(Math.abs(away - offset) > 1, `the player was moved away from ${offset} s first (it is at ${away} s)`);
    if (how === 'mouse') {
      await marker.click();
    } else {
      await marker.focus();
      await page.keyboard.press('Enter');
    }
    const at = await positionAfterSeek();
    console.log(`marker ${i + 1} (${how}): offset ${offset} s, player at ${at.toFixed(3)} s`);
    check(Math.abs(at - offset) <= TOLERANCE, `marker ${i + 1} (${how}) seeks to ${offset} s; the player is at ${at} s`);
  }
  await shot('after-seek');

  step = 'export with a reason';
  await page.getByLabel('Reason for exporting').fill(exportReason);
  const download = page.waitForEvent('download', { timeout: 60000 });
  await page.getByRole('button', { name: 'Export evidence bundle (zip)' }).click();
  const file = await download;
  const failure = await file.failure();
  check(!failure, `the download failed: ${failure}`);
  const zipPath = path.join(artefacts, `${recordId}.zip`);
  await file.saveAs(zipPath);
  const head = fs.readFileSync(zipPath).subarray(0, 4);
  check(head[0] === 0x50 && head[1] === 0x4b, 'the download is a zip (starts with PK)');
  await page.getByText('download of the zip has started').waitFor();
  await shot('exported');

  step = 'sign out';
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API key').waitFor();
  await page.goto(`${base}/ui/records/${recordId}`);
  await page.getByLabel('API key').waitFor();
  check(!(await page.getByText('Signed in as').isVisible()), 'the session ended at sign-out');
  await shot('signed-out');

  step = 'no script error and no policy violation';
  check(problems.length === 0, problems.join('\n'));
  console.log(`replay page: every step held; screenshots and the zip in ${artefacts}`);
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  process.exit(0);
} catch (e) {
  console.error(`FAILED at "${step}": ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  try {
    await shot('failure');
    console.error(`the page at the failure: ${path.join(artefacts, 'failure.png')} (${page.url()})`);
  } catch (_) {
    /* the browser is gone */
  }
  await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}
