// Real-browser end-to-end test of the German staff UI (headless Chromium via playwright-core).
//
// Needs a running `au-relay serve --demo` at BASE_URL (scripts/e2e.sh starts one on a temp
// SQLite database). Screenshots go to ARTIFACTS (default: a temp dir). Exits non-zero on the
// first failed step and names it.
//
//   BASE_URL=http://127.0.0.1:8080 ARTIFACTS=/tmp/e2e node e2e.mjs

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const BASE = process.env.BASE_URL ?? 'http://127.0.0.1:8080';
const ARTIFACTS = process.env.ARTIFACTS ?? fs.mkdtempSync(path.join(os.tmpdir(), 'au-relay-e2e-'));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// The KIM route drains at the next reading of the mailbox.
const DRAIN_TIMEOUT_MS = Number(process.env.DRAIN_TIMEOUT_MS ?? 150_000);
// Issue #18: once the insurer answers its health probe (every 5 s while it fails), the backlog
// starts at once, not at the next scheduled retry.
const BACK_WITHIN_MS = Number(process.env.BACK_WITHIN_MS ?? 10_000);
const BANNER = 'Übermittlung an Demo-Krankenkasse (AOK Niedersachsen) gestört – KK-Ausfertigung mitgeben';

fs.mkdirSync(ARTIFACTS, { recursive: true });

let step = 'start';
const started = Date.now();
function log(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);
}
function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Today and offsets in Germany, as TT.MM.JJJJ (the app's "festgestellt am" may not be in the future). */
function germanDate(offsetDays = 0) {
  const d = new Date(Date.now() + offsetDays * 86_400_000);
  return new Intl.DateTimeFormat('de-DE', {
    timeZone: 'Europe/Berlin', day: '2-digit', month: '2-digit', year: 'numeric',
  }).format(d);
}

async function shot(page, name) {
  const file = path.join(ARTIFACTS, `e2e-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log(`screenshot ${file}`);
}

/** Fills the "Neue AU" form by its German labels. */
async function fillCertificate(page, p) {
  await page.getByLabel('Name', { exact: true }).fill(p.lastName);
  await page.getByLabel('Vorname', { exact: true }).fill(p.firstName);
  await page.getByLabel('Geburtsdatum').fill(p.birthDate);
  await page.getByLabel('Versicherten-Nr.').fill(p.kvnr);
  await page.getByLabel('Straße', { exact: true }).fill(p.street);
  await page.getByLabel('Hausnummer').fill(p.houseNumber);
  await page.getByLabel('PLZ').fill(p.postalCode);
  await page.getByLabel('Ort', { exact: true }).fill(p.city);
  if (p.insurerLookup) {
    await pickInsurer(page, p.insurerLookup, p.ik);
  } else {
    await page.getByLabel('Krankenkasse bzw. Kostenträger').fill(p.insurer ?? 'AOK Niedersachsen');
    await page.getByLabel('Kostenträgerkennung (IK)').fill(p.ik ?? '109500969');
  }
  await page.getByLabel('arbeitsunfähig seit (nur Erstbescheinigung)').fill(germanDate(-1));
  await page.getByLabel('voraussichtlich arbeitsunfähig bis einschließlich').fill(germanDate(3));
  await page.getByLabel('festgestellt am').fill(germanDate(0));
  await page.getByLabel('ICD-10-Code 1').fill(p.icd);
}

/** Types part of an insurer's name and takes the lookup's first suggestion with Enter. */
async function pickInsurer(page, typed, ik) {
  const name = page.getByLabel('Krankenkasse bzw. Kostenträger');
  await name.fill('');
  await name.pressSequentially(typed, { delay: 20 });
  await page.locator('#insurer-suggestions button', { hasText: `IK ${ik}` }).first().waitFor();
  await name.press('Enter');
  const filled = await page.getByLabel('Kostenträgerkennung (IK)').inputValue();
  check(filled === ik, `the insurer lookup filled IK ${filled}, expected ${ik}`);
}

/** Saves the form and returns the detail page's document UUID. */
async function save(page) {
  await Promise.all([page.waitForURL(/\/certificates\/[0-9a-f-]{36}$/), page.getByRole('button', { name: 'AU speichern' }).click()]);
  const id = page.url().split('/').pop();
  await page.getByText('Arbeitsunfähigkeitsbescheinigung', { exact: true }).waitFor();
  return id;
}

/** Clicks a button of a post/redirect/get form that leads back to `path`, and waits for that page. */
async function submitBackTo(page, button, path) {
  await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === path),
    button.click(),
  ]);
  await page.waitForLoadState('load');
}

/** Follows a navigation link and waits for its page. */
async function follow(page, name, url) {
  await Promise.all([page.waitForURL(url), page.getByRole('link', { name, exact: true }).click()]);
}

async function unsentRows(page) {
  return page.locator('main').innerText();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // The project's Chromium flags (playwright adds --headless too; twice is harmless).
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-sync', '--disable-quic'],
});
// launch() already uses a fresh temporary profile (--user-data-dir) per browser.
const context = await browser.newContext({ locale: 'de-DE', viewport: { width: 1024, height: 720 } });
const page = await context.newPage();
page.setDefaultTimeout(15_000);
let failed = false;

try {
  step = 'log in as demo/demo';
  await page.goto(`${BASE}/login`);
  await page.getByLabel('Benutzername').fill('demo');
  await page.getByLabel('Passwort').fill('demo');
  await Promise.all([page.waitForURL(/\/certificates/), page.getByRole('button', { name: 'Anmelden' }).click()]);
  check((await page.locator('header .user').innerText()) === 'demo', 'user name not shown after login');
  log('logged in');

  // Switching the demo insurer is the operator's (dispatch configuration): a second browser
  // context with its own session, logged in as operator/operator.
  step = 'log in as operator/operator in a second browser';
  const ops = await (await browser.newContext({ locale: 'de-DE', viewport: { width: 1024, height: 720 } })).newPage();
  ops.setDefaultTimeout(15_000);
  await ops.goto(`${BASE}/login`);
  await ops.getByLabel('Benutzername').fill('operator');
  await ops.getByLabel('Passwort').fill('operator');
  await Promise.all([ops.waitForURL(/\/operator$/), ops.getByRole('button', { name: 'Anmelden' }).click()]);
  log('operator logged in');

  step = 'declare the demo insurer down on "Versand" (operator)';
  await follow(ops, 'Versand', /\/queue$/);
  await ops.getByRole('heading', { name: 'Versand an die Krankenkassen' }).waitFor();
  await submitBackTo(ops, ops.getByRole('button', { name: 'Ausfall simulieren' }), '/queue');
  log('demo insurer down');

  step = 'capture with a wrong KVNR check digit';
  await follow(page, 'Neue AU', /\/certificates\/new$/);
  const juergen = {
    lastName: 'Müller-Lüdenscheidt', firstName: 'Jürgen', birthDate: '01.04.1980',
    kvnr: 'A123456781', street: 'Große Straße', houseNumber: '5', postalCode: '30159', city: 'Hannover',
    icd: 'J06.9',
  };
  await fillCertificate(page, juergen);
  await page.getByRole('button', { name: 'AU speichern' }).click();
  const kvnrError = page.locator('#patient\\.kvnr-error');
  await kvnrError.waitFor();
  const message = await kvnrError.innerText();
  check(/Prüfziffer/.test(message), `unexpected KVNR error: ${message}`);
  check(await page.getByRole('alert').getByText('Bitte korrigieren Sie 1 Angabe:').isVisible(),
    'error summary missing');
  check(await page.getByLabel('Name', { exact: true }).inputValue() === 'Müller-Lüdenscheidt',
    'the form lost the umlauts of the name');
  await page.getByLabel('Versicherten-Nr.').scrollIntoViewIfNeeded();
  await shot(page, 'field-error');
  log(`field error shown: "${message}"`);

  step = 'fix the KVNR and save';
  await page.getByLabel('Versicherten-Nr.').fill('A123456780');
  const first = await save(page);
  const detail = await page.locator('dl.detail').innerText();
  check(detail.includes('Müller-Lüdenscheidt, Jürgen'), `name not on the detail page: ${detail}`);
  check(detail.includes('Große Straße 5'), 'street with ß not on the detail page');
  const state = await page.locator('table.list tbody tr').first().innerText();
  // The demo practice signs through its (test) Konnektor: nothing is sent before the signature.
  check(/wartet auf Signatur/.test(state), `first certificate is not waiting for its signature: ${state}`);
  await shot(page, 'detail');
  log(`saved ${first}`);

  step = 'print all copies (PDF)';
  const href = await page.getByRole('link', { name: 'mit Arbeitgeber' }).getAttribute('href');
  const pdf = await page.request.get(`${BASE}${href}`);
  check(pdf.status() === 200, `PDF answered ${pdf.status()}`);
  check((pdf.headers()['content-type'] ?? '').startsWith('application/pdf'), `PDF content type ${pdf.headers()['content-type']}`);
  const bytes = await pdf.body();
  check(bytes.subarray(0, 5).toString('latin1') === '%PDF-', 'PDF does not start with %PDF-');
  check(bytes.subarray(-64).toString('latin1').includes('%%EOF'), 'PDF has no %%EOF');
  fs.writeFileSync(path.join(ARTIFACTS, 'e2e-all-copies.pdf'), bytes);
  log(`PDF of all copies: ${bytes.length} bytes`);

  step = 'capture a second certificate while the insurer is down, the insurer picked from the lookup';
  let text;
  await follow(page, 'Weitere AU erfassen', /\/certificates\/new$/);
  await fillCertificate(page, {
    lastName: 'Größe', firstName: 'Änne', birthDate: '12.11.1975', kvnr: 'A123456780',
    street: 'Äußere Kanalstraße', houseNumber: '12a', postalCode: '30159', city: 'Hannover', icd: 'M54.5',
    insurerLookup: 'AOK Nieder', ik: '109500969',
  });
  await page.getByLabel('Krankenkasse bzw. Kostenträger').scrollIntoViewIfNeeded();
  const second = await save(page);
  log(`saved ${second}`);

  step = 'sign both as the doctor (Stapelsignatur on "Zu signieren")';
  // The navigation's link (the detail page links to the same page in its text).
  await Promise.all([page.waitForURL(/\/signatur$/),
    page.locator('header nav').getByRole('link', { name: 'Zu signieren', exact: true }).click()]);
  text = await page.locator('main').innerText();
  check(text.includes('2 Dokumente warten auf die Signatur'), `not both waiting for the signature: ${text}`);
  check(text.includes('Müller-Lüdenscheidt') && text.includes('Größe, Änne'), 'not both listed to sign');
  check(text.includes('TSL'), 'the page does not say that the TI trust chain is not checked');
  await shot(page, 'to-sign');
  await submitBackTo(page, page.getByRole('button', { name: 'Ausgewählte signieren (Stapelsignatur)' }), '/signatur');
  text = await page.locator('main').innerText();
  check(text.includes('2 signiert und zum Versand freigegeben'), `batch not signed: ${text}`);
  check(text.includes('Keine Dokumente warten auf ihre Signatur.'), 'documents still waiting after signing');
  await page.goto(`${BASE}/certificates/${first}`);
  text = await page.locator('main').innerText();
  check(text.includes('QES mit eHBA') && text.includes('TEST-ONLY'), `signature not shown on the detail page: ${text}`);
  await page.getByRole('heading', { name: 'Signatur' }).scrollIntoViewIfNeeded();
  await shot(page, 'signed');
  log('both signed in one Stapelsignatur');

  step = 'the first failed attempt: "gestört" in red on "Versand" and the banner on every page';
  await follow(page, 'Versand', /\/queue$/);
  const row = page.locator('table.list tbody tr', { hasText: 'IK 109500969' });
  const failDeadline = Date.now() + 15_000;
  for (;;) {
    text = await page.locator('main').innerText();
    if (text.includes(BANNER)) break;
    check(Date.now() < failDeadline, `no banner 15 s after signing: ${text}`);
    await page.waitForTimeout(500);
    await page.reload();
  }
  const status = row.locator('td.status');
  check((await status.innerText()).startsWith('gestört'), `state of the demo insurer: ${await status.innerText()}`);
  const color = await status.evaluate((el) => getComputedStyle(el).color);
  check(color === 'rgb(176, 0, 32)', `"gestört" is not red: ${color}`);
  const dispatch = page.locator('table.dispatch tbody tr');
  check(await dispatch.count() === 2, 'not both certificates in the dispatch list');
  for (const tries of await dispatch.locator('small.attempts').allInnerTexts()) {
    check(tries.startsWith('1 Versuch ·'), `banner shown after "${tries}", expected the first attempt`);
  }
  text = await page.locator('table.dispatch').innerText();
  check(text.includes('Müller-Lüdenscheidt') && text.includes('Größe, Änne'), 'not both certificates listed as unsent');
  check(/per Post spätestens \d\d\.\d\d\.\d{4}/.test(text), `no deadline column: ${text}`);
  check(text.includes('KK-Ausfertigung drucken'), 'no KK button per row');
  const backlog = await row.locator('td').nth(2).innerText();
  check(backlog.trim() === '2', `backlog of the demo insurer is ${backlog}, expected 2`);
  await shot(page, 'waiting');
  for (const link of ['Bescheinigungen', 'Neue AU', 'Zu signieren']) {
    await page.locator('header nav').getByRole('link', { name: link, exact: true }).click();
    await page.waitForLoadState('load');
    check(await page.getByRole('alert').filter({ hasText: BANNER }).isVisible(), `no banner on "${link}"`);
  }
  log('gestört after the first failed attempt, banner on every page');

  step = 'Folgebescheinigung from the first, and KK + V printed from the result page';
  await page.goto(`${BASE}/certificates/${first}`);
  await Promise.all([page.waitForURL(/\/folge$/), page.getByRole('link', { name: 'Folgebescheinigung erstellen' }).click()]);
  check(await page.getByLabel('Name', { exact: true }).inputValue() === 'Müller-Lüdenscheidt', 'Folge not filled from the Erst');
  check(await page.locator('input[name=kind][value=FOLGE]').isChecked(), 'not a Folgebescheinigung');
  check(!(await page.locator('#end').isChecked()), 'Endbescheinigung ticked by itself');
  // No retyping at all: the form comes complete.
  const folge = await save(page);
  const handOver = page.getByRole('alert').filter({ hasText: 'derzeit gestört' });
  await handOver.waitFor();
  const kkv = handOver.getByRole('link', { name: 'KK + Versicherte jetzt drucken' });
  const both = await page.request.get(`${BASE}${await kkv.getAttribute('href')}`);
  check(both.status() === 200, `KK + V answered ${both.status()}`);
  const disposition = both.headers()['content-disposition'] ?? '';
  check(disposition.includes('KK-und-Versicherten-Ausfertigung'), `download name: ${disposition}`);
  fs.writeFileSync(path.join(ARTIFACTS, 'e2e-kk-v.pdf'), await both.body());
  await shot(page, 'hand-over');
  await page.reload();
  check((await page.locator('ul.prints').innerText()).includes('KK+V A5'), 'the print is not recorded on the page');
  await Promise.all([page.waitForURL(/\/signatur$/),
    page.locator('header nav').getByRole('link', { name: 'Zu signieren', exact: true }).click()]);
  await submitBackTo(page, page.getByRole('button', { name: 'Ausgewählte signieren (Stapelsignatur)' }), '/signatur');
  log(`Folgebescheinigung ${folge} saved without retyping, KK + V printed, signed`);

  step = `bring the insurer back (operator) and see the backlog delivered within ${BACK_WITHIN_MS / 1000} s`;
  await follow(page, 'Versand', /\/queue$/);
  // The health probe (every 5 s) has seen the insurer down: the breaker is open.
  const seenDown = Date.now() + 15_000;
  while (!(await page.locator('table.list tbody tr', { hasText: 'IK 109500969' }).locator('td.status').innerText())
    .includes('nicht erreichbar')) {
    check(Date.now() < seenDown, 'the probe did not find the insurer down within 15 s');
    await page.waitForTimeout(500);
    await page.reload();
  }
  await ops.reload();
  await submitBackTo(ops, ops.getByRole('button', { name: 'wieder erreichbar' }), '/queue');
  const back = Date.now();
  for (;;) {
    text = await unsentRows(page);
    if (text.includes('Alle Bescheinigungen sind bei der Krankenkasse angekommen.')) break;
    check(Date.now() - back < BACK_WITHIN_MS, `backlog not delivered within ${BACK_WITHIN_MS / 1000} s: ${text}`);
    await page.waitForTimeout(500);
    await page.reload();
  }
  log(`backlog delivered ${((Date.now() - back) / 1000).toFixed(1)} s after the insurer came back`);
  check(!text.includes(BANNER), 'the banner is still there');
  await shot(page, 'delivered');
  await page.goto(`${BASE}/queue?status=alle`);
  await shot(page, 'dispatch-list');
  for (const id of [first, second, folge]) {
    await page.goto(`${BASE}/certificates/${id}`);
    check((await page.locator('main').innerText()).includes('bei der Krankenkasse angekommen'), `${id} not delivered`);
  }
  log('both delivered');

  step = 'an earlier patient from the lookup, for the Demo-BKK, which reads only KIM';
  await follow(page, 'Neue AU', /\/certificates\/new$/);
  const lastName = page.getByLabel('Name', { exact: true });
  await lastName.pressSequentially('Größ', { delay: 20 });
  await page.locator('#patient-suggestions button', { hasText: 'Größe, Änne, geb. 12.11.1975' }).waitFor();
  await shot(page, 'lookup');
  await lastName.press('Enter');
  check(await page.getByLabel('Vorname', { exact: true }).inputValue() === 'Änne', 'the patient lookup did not fill the first name');
  check(await page.getByLabel('Geburtsdatum').inputValue() === '12.11.1975', 'birth date not filled');
  check(await page.getByLabel('Straße', { exact: true }).inputValue() === 'Äußere Kanalstraße', 'street not filled');
  check(await page.getByLabel('Kostenträgerkennung (IK)').inputValue() === '109500969', 'insurer not filled');
  await pickInsurer(page, 'Demo-BKK', '104212059');
  await page.getByLabel('voraussichtlich arbeitsunfähig bis einschließlich').fill(germanDate(3));
  await page.getByLabel('ICD-10-Code 1').fill('j209');
  const third = await save(page);
  await Promise.all([page.waitForURL(/\/signatur$/),
    page.locator('header nav').getByRole('link', { name: 'Zu signieren', exact: true }).click()]);
  await submitBackTo(page, page.getByRole('button', { name: 'Ausgewählte signieren (Stapelsignatur)' }), '/signatur');
  await follow(page, 'Versand', /\/queue$/);
  text = await page.locator('main').innerText();
  check(text.includes('per KIM') && text.includes('eau@demo-bkk.kim.telematik-test'), `no KIM destination on "Versand": ${text}`);
  check(text.includes('KIM-Postfach praxis-muster@arzt.kim.telematik-test'), 'the practice KIM mailbox is not shown');

  step = 'watch it sent over KIM and confirmed by its delivery status notification';
  const kimDeadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    await page.goto(`${BASE}/certificates/${third}`);
    text = await page.locator('main').innerText();
    if (text.includes('bei der Krankenkasse angekommen')) break;
    check(Date.now() < kimDeadline, `not delivered over KIM within ${DRAIN_TIMEOUT_MS / 1000} s: ${text}`);
    if (text.includes('Zustellbestätigung ausstehend')) {
      // Ask for the mailbox now instead of waiting for the next scheduled reading.
      await follow(page, 'Versand', /\/queue$/);
      await submitBackTo(page, page.getByRole('button', { name: 'Postfach jetzt abrufen' }), '/queue');
    }
    await page.waitForTimeout(2_000);
  }
  const kim = await page.locator('table.kim').innerText();
  check(/@kim\.local/.test(kim) && /\d\d\.\d\d\.\d{4}/.test(kim.split('\n').pop() ?? ''), `no receipt in the KIM table: ${kim}`);
  check(text.includes('Zustellbestätigung'), 'the receipt is not listed on the detail page');
  await page.locator('table.kim').scrollIntoViewIfNeeded();
  await shot(page, 'kim-delivered');
  log('delivered over KIM, receipt read');
  step = 'an insurer clerk uploads the printed copies on "Papier-AU abgleichen" and downloads the CSV';
  // The insurer's side of issue #17: the KK copies printed above went to the insurer by post;
  // its clerk (demo account kasse/kasse, IK 109500969) uploads them and learns which ones are
  // already electronic. The PDFs as printed: KK, V and AG of the first certificate, KK and V
  // of the Folgebescheinigung; only the KK copies carry a barcode.
  const clerk = await (await browser.newContext({ locale: 'de-DE', viewport: { width: 1024, height: 720 }, acceptDownloads: true })).newPage();
  clerk.setDefaultTimeout(60_000);
  await clerk.goto(`${BASE}/login`);
  await clerk.getByLabel('Benutzername').fill('kasse');
  await clerk.getByLabel('Passwort').fill('kasse');
  await Promise.all([clerk.waitForURL(/\/kasse\/scans$/), clerk.getByRole('button', { name: 'Anmelden' }).click()]);
  await clerk.getByLabel(/Scan-Dateien/).setInputFiles([
    path.join(ARTIFACTS, 'e2e-all-copies.pdf'),
    path.join(ARTIFACTS, 'e2e-kk-v.pdf'),
  ]);
  await Promise.all([
    clerk.waitForURL(/\/kasse\/scans\/[0-9a-f-]{36}$/),
    clerk.getByRole('button', { name: 'Hochladen und abgleichen' }).click(),
  ]);
  const counts = await clerk.locator('ul.scan-counts').innerText();
  check(/2 elektronisch vorhanden/.test(counts), `not both KK copies matched: ${counts}`);
  check(/3 nicht lesbar/.test(counts), `V and AG pages not reported as without barcode: ${counts}`);
  const rows = await clerk.locator('table.scan-result tbody').innerText();
  check(rows.includes(first) && rows.includes(folge), `the matched documents are not named: ${rows}`);
  await shot(clerk, 'scans-result');
  const [download] = await Promise.all([
    clerk.waitForEvent('download'),
    clerk.getByRole('link', { name: 'Ergebnis als CSV herunterladen' }).click(),
  ]);
  const csvPath = path.join(ARTIFACTS, 'e2e-scans.csv');
  await download.saveAs(csvPath);
  const csv = fs.readFileSync(csvPath, 'utf8').trim().split(/\r?\n/);
  check(csv.length === 6, `CSV has ${csv.length} lines, expected a header and 5 pages`);
  check(csv.filter((l) => l.includes(';electronic;')).length === 2, `CSV: ${csv.join(' | ')}`);
  check(!(await clerk.locator('header nav').innerText()).includes('Neue AU'), 'the clerk sees practice menus');
  log(`insurer clerk: 5 pages uploaded, 2 electronic, CSV ${download.suggestedFilename()}`);

  step = 'done';
} catch (e) {
  failed = true;
  console.error(`E2E FAILED at step "${step}": ${e.message}`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'e2e-failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
console.log(failed ? `e2e: FAILED (artifacts in ${ARTIFACTS})` : `e2e: passed in ${((Date.now() - started) / 1000).toFixed(1)} s (artifacts in ${ARTIFACTS})`);
process.exit(failed ? 1 : 0);
