// @ts-check
// End-to-end scenarios of the dashboard in a real browser (Debian's
// chromium through playwright-core) against a running hoheit-api that serves
// the built dashboard. Driven by tests/it/dashboard.rs, which sets up the town,
// publishes readings through MQTT → ingest → Kafka → writer and passes
// HOHEIT_E2E_SCENARIO (JSON: keys, datastream ids, expected values; the
// other variables in browser.mjs).
//
// It prints `LIVE_READY` when the list is open and waits for the value the
// test then publishes to appear live. Every view is checked with axe-core
// (WCAG 2.1 A and AA). Exit code 0 only if every check passed.

import { launch } from './browser.mjs';

const { base, scenario, page, shot, check, accessible, errors, done } = await launch('HOHEIT_E2E_SCENARIO');

/** @param {string} key */
async function signIn(key) {
  await page.fill('#key', key);
  await page.click('#signin-button');
  await page.waitForSelector('body[data-session="key"]');
  check((await page.inputValue('#key')) === '', 'the key field is emptied after sign-in');
}

async function signOut() {
  await page.click('#signout');
  await page.waitForSelector('body[data-session="public"]');
}

/**
 * The rows of a table: their data-* values and text.
 * @param {string} selector
 * @returns {Promise<Record<string, string | undefined>[]>}
 */
async function rowsOf(selector) {
  return page.$$eval(`${selector} tbody tr`, (rows) => rows.map((r) => ({ ...(/** @type {HTMLElement} */ (r)).dataset, text: r.textContent || '' })));
}

/**
 * The text of the element `selector` (empty when it has none).
 * @param {string} selector
 */
async function textOf(selector) {
  return (await page.textContent(selector)) || '';
}

/**
 * The data-* values of the element `selector`.
 * @param {string} selector
 * @returns {Promise<Record<string, string | undefined>>}
 */
async function dataOf(selector) {
  return page.$eval(selector, (el) => ({ ...(/** @type {HTMLElement} */ (el)).dataset }));
}

let failed = null;
try {
  // --- Public view: open data only, on the map and in the list. --------------
  await page.goto(`${base}/#/map`);
  await page.waitForSelector('#map[data-markers]');
  await page.waitForFunction(() => Number(document.querySelector('#map')?.getAttribute('data-markers')) >= 1);
  check((await page.locator('.leaflet-interactive').count()) >= 1, 'public map: a marker is drawn although tiles fail');
  await page.waitForSelector('.notice:not([hidden])', { timeout: 10000 }).catch(() => {});
  check((await textOf('nav.tabs')).includes('Karte'), 'German text by default for a de-DE browser');
  await accessible('the public map');
  await shot('01-public-map');
  await page.goto(`${base}/#/list`);
  await page.waitForSelector('#streams tbody tr');
  let rows = await rowsOf('#streams');
  const publicIds = rows.map((r) => Number(r.id)).sort();
  check(JSON.stringify(publicIds) === JSON.stringify([scenario.open_id]), `public list shows only the open datastream: ${publicIds}`);
  check(rows.every((r) => r.text?.includes('open')), 'public list: every row is classified open');
  await accessible('the public list');
  await shot('02-public-list');
  await page.goto(`${base}/#/datastream/${scenario.open_id}`);
  await page.waitForSelector('#points tbody tr');
  check((await dataOf('#chart')).kind === 'raw', 'the public reads open data raw');
  await accessible("an open datastream's chart, public");
  await page.goto(`${base}/#/list`);
  await page.waitForSelector('#streams tbody tr');
  await page.click('#lang');
  await page.waitForFunction(() => document.querySelector('nav.tabs')?.textContent?.includes('Map'));
  check(true, 'the language switch turns the UI English');
  await accessible('the public list in English');

  // --- A department reader: the chart holds the readings published moments ago.
  await signIn(scenario.department_key);
  await page.goto(`${base}/#/list`);
  await page.waitForSelector(`#streams tbody tr[data-id="${scenario.traffic_id}"]`);
  rows = await rowsOf('#streams');
  check(rows.length === 2, `the department sees the internal and the open datastream: ${rows.length}`);
  await accessible('the list, signed in with a key');
  await page.fill('#filter-search', 'vehicles');
  await page.waitForFunction(() => document.querySelectorAll('#streams tbody tr').length === 1);
  check(true, 'search narrows the list');
  await page.fill('#filter-search', '');
  await page.selectOption('#filter-classification', 'open');
  await page.waitForFunction((id) => [...document.querySelectorAll('#streams tbody tr')].every((r) => r.getAttribute('data-id') === String(id)), scenario.open_id);
  check(true, 'the classification filter keeps only open data');
  await page.selectOption('#filter-classification', '');

  await page.goto(`${base}/#/datastream/${scenario.traffic_id}`);
  await page.waitForSelector('#points tbody tr');
  const chart = await dataOf('#chart');
  const canvas = await page.$eval('#chart', (el) => !!el.querySelector('canvas'));
  check(chart.kind === 'raw', `24 h of a readable stream are raw readings: ${chart.kind}`);
  check(canvas, 'the chart is drawn');
  const values = (await rowsOf('#points')).map((r) => Number(r.value));
  const expected = scenario.traffic_values;
  check(JSON.stringify(values) === JSON.stringify(expected), `the chart shows exactly the published readings: ${values} = ${expected}`);
  check(Number(chart.points) === expected.length, 'the chart holds every point');
  check((await textOf('#unit')).trim() === scenario.unit, 'the unit is shown');
  const licenseLink = await page.$eval('#license a', (a) => ({ href: a.getAttribute('href'), text: a.textContent }));
  check(licenseLink.href === scenario.license && licenseLink.text === scenario.license_name_en, `the license is shown by name, linked to its URI: ${JSON.stringify(licenseLink)}`);
  check(await page.isVisible('#download-csv'), 'CSV download is offered');
  const download = page.waitForEvent('download');
  await page.click('#download-csv');
  const csv = await (await download).createReadStream().then(async (s) => {
    let text = '';
    for await (const chunk of s) text += chunk;
    return text;
  });
  check(csv.trim().split('\n').length === expected.length + 1, 'the CSV holds what is shown');
  await accessible("a datastream's chart of raw readings");
  await shot('03-department-datastream');
  await page.reload();
  await page.waitForSelector('body[data-session="public"]');
  check(true, 'reloading the page signs out (the key lived only in memory)');
  await signIn(scenario.department_key);
  await page.goto(`${base}/#/datastream/${scenario.traffic_id}`);
  await page.waitForSelector('#points tbody tr');
  await page.click('button[data-preset="d7"]');
  await page.waitForFunction(() => document.querySelector('#chart')?.getAttribute('data-kind') === 'aggregate');
  const agg = await dataOf('#chart');
  check(agg.kind === 'aggregate' && Number(agg.points) >= 1, `7 days are aggregates (${agg.interval}) with a min/max band`);
  await accessible("a datastream's chart of aggregates");
  await shot('04-department-7-days');
  await page.click('button[data-preset="custom"]');
  await page.waitForSelector('form.custom-range:not([hidden])');
  await accessible("a datastream's chart with the custom range form");

  // Live: the list follows a reading published now.
  await page.goto(`${base}/#/list`);
  await page.waitForSelector('#live-status[data-connected="true"]');
  console.log('LIVE_READY');
  await page.waitForFunction(
    ({ id, value }) => Number(document.querySelector(`#streams tr[data-id="${id}"] td.latest`)?.getAttribute('data-value')) === value,
    { id: scenario.traffic_id, value: scenario.live_value },
    { timeout: 30000 },
  );
  check(true, `the live stream brought ${scenario.live_value} into the list without a reload`);
  await shot('05-department-live-list');
  await signOut();

  // --- A third party: only its granted aggregates, and the reason for raw. ---
  // Signed in by keyboard alone, on a fresh page.
  await page.reload();
  await page.waitForSelector('body[data-session="public"]');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  check((await page.evaluate(() => document.activeElement?.id)) === 'key', 'keyboard: Tab reaches the key field');
  await page.keyboard.type(scenario.third_party_key);
  await page.keyboard.press('Enter');
  await page.waitForSelector('body[data-session="key"]');
  const stored = await page.evaluate(() =>
    [localStorage, sessionStorage].flatMap((s) => Object.keys(s).map((k) => s.getItem(k))).join(' ') + document.cookie + location.href,
  );
  check(!stored.includes('hoh_'), 'the key is in no URL, cookie or browser storage');
  await page.goto(`${base}/#/datastream/${scenario.traffic_id}`);
  await page.waitForSelector('.denial:not([hidden]) .reason');
  const reason = await textOf('.denial .reason');
  check(reason.includes(scenario.denial_contains), `the denial's reason is shown: "${reason}"`);
  await page.waitForFunction(() => document.querySelector('#chart')?.hasAttribute('data-points'));
  const third = await dataOf('#chart');
  check(third.kind === 'aggregate' && third.interval === '15m', `the third party gets 15-minute aggregates: ${third.kind} ${third.interval}`);
  check(Number(third.points) >= 1, 'with buckets of the published readings');
  await accessible("a datastream's chart with the reason raw readings are denied");
  await shot('06-third-party-aggregates');
  await signOut();

  // --- The data owner: grants, audit log, dead letters. ----------------------
  await signIn(scenario.owner_key);
  await page.goto(`${base}/#/owner`);
  await page.waitForSelector('#dead-letters');
  check((await textOf('table.grants')).includes(scenario.contract_ref), 'the owner sees the grant and its contract');
  await page.waitForSelector('#audit tbody tr');
  const audit = await textOf('#audit');
  check(audit.includes('third-party'), "the audit log names the third party's reads");
  await page.check('#audit-denied');
  await page.click('section[aria-labelledby="h-audit"] button[type="submit"]');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit tbody tr')].length >= 1);
  check((await textOf('#dead-letters')).includes('malformed_payload'), 'the owner sees the rejected message with its reason');
  await accessible("the data owner's view");
  await shot('07-owner');
  await signOut();

  // --- Everyone: the transparency report. -----------------------------------
  await page.goto(`${base}/#/transparency`);
  await page.waitForSelector('#transparency tbody tr');
  check((await page.locator('#by-dataset li').count()) >= 1, 'the transparency report is charted');
  await accessible('the transparency report');
  await shot('08-transparency');
  check(errors.length === 0, `no errors in the page: ${errors.join(' | ')}`);
} catch (error) {
  failed = error;
}
await done(failed);
