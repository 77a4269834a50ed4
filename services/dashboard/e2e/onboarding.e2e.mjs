// @ts-check
// Onboarding in a real browser, driven by tests/it/dashboard.rs
// (HOHEIT_E2E_ONBOARDING: keys, slugs, the import files and what the page
// must show):
//
// - a Stadtwerk's admin registers a thing from a device type, imports a CSV
//   file (a dry run first: the diff shown, nothing created; then the import),
//   sees every bad line of a rejected file, and replays the readings that were
//   rejected before the thing existed (the thing's count of rejected messages
//   drops to zero);
// - the operator picks the organisation it onboards.
//
// access.e2e.mjs holds the labels and "my access".
//
// That a dry run created nothing is asked of the API too, not only of the
// page. Every view is checked with axe-core.

import { launch } from './browser.mjs';

const { base, scenario, page, shot, check, accessible, errors, done } = await launch('HOHEIT_E2E_ONBOARDING');

/** @param {string} key */
async function signIn(key) {
  await page.fill('#key', key);
  await page.click('#signin-button');
  await page.waitForSelector('body[data-session="key"]');
}

async function signOut() {
  await page.click('#signout');
  await page.waitForSelector('body[data-session="public"]');
}

/**
 * The text of the element `selector` (empty when it has none).
 * @param {string} selector
 */
async function textOf(selector) {
  return (await page.textContent(selector)) || '';
}

/**
 * The things table's row of a thing: its data-* values and cells.
 * @param {string} slug
 * @returns {Promise<{ type?: string, deadLetters?: string, cells: string[] }>}
 */
async function thingRow(slug) {
  return page.$eval(`#onboarding-things tr[data-slug="${slug}"]`, (r) => ({
    ...(/** @type {HTMLElement} */ (r)).dataset,
    cells: [...r.querySelectorAll('td')].map((c) => c.textContent || ''),
  }));
}

/**
 * Chooses a file for the import form, as a user would.
 * @param {string} name
 * @param {string} text
 */
async function chooseFile(name, text) {
  await page.setInputFiles('#import-file', { name, mimeType: name.endsWith('.json') ? 'application/json' : 'text/csv', buffer: Buffer.from(text) });
}

let failed = null;
try {
  // --- The Stadtwerk's admin: onboarding. ------------------------------------
  await page.goto(`${base}/#/map`);
  await signIn(scenario.admin_key);
  await page.waitForSelector('#nav-onboarding:not([hidden])');
  await page.click('#nav-onboarding');
  await page.waitForSelector('#onboarding-things tbody tr');
  check((await page.locator('#onboarding-org').count()) === 0, "an organisation's admin onboards its own organisation (no picker)");
  await accessible('onboarding');
  await shot('01-things');

  // Register a thing from its device type: the type's units as people write them.
  await page.selectOption('#register-type', scenario.type_slug);
  await page.waitForFunction(() => document.querySelector('#type-properties')?.textContent?.includes('µg/m³'));
  check((await textOf('#type-properties')).includes('°C'), "the type's properties with their units as people write them (µg/m³, °C)");
  const t = scenario.new_thing;
  await page.fill('#register-slug', t.slug);
  await page.fill('#register-name', t.name);
  await page.fill('#register-latitude', String(t.latitude));
  await page.fill('#register-longitude', String(t.longitude));
  await page.click('#register-form button[type="submit"]');
  await page.waitForSelector(`#onboarding-things tr[data-slug="${t.slug}"]`);
  const row = await thingRow(t.slug);
  check(row.type === scenario.type_slug, `the thing is registered with its type: ${row.type}`);
  check(row.cells[3] === String(scenario.type_properties), `with a datastream per property of the type: ${row.cells[3]}`);
  check(Number(row.deadLetters) === scenario.dead_letters, `the readings it sent before it existed are counted as rejected: ${row.deadLetters}`);
  await accessible('onboarding with a registered thing and its type');

  // Import: a dry run shows the diff and creates nothing; then the import.
  await chooseFile('things.csv', scenario.csv);
  await page.click('#import-dry-run');
  await page.waitForSelector('#import-report[data-dry-run="true"]');
  const diff = await page.$$eval('#import-diff tbody tr', (rows) => rows.map((r) => [r.getAttribute('data-action'), r.children[1]?.textContent]));
  check(
    JSON.stringify(diff.map(([, slug]) => slug).sort()) === JSON.stringify([...scenario.import_slugs].sort()) && diff.every(([a]) => a === 'create'),
    `the dry run lists what it would create: ${JSON.stringify(diff)}`,
  );
  for (const slug of scenario.import_slugs) {
    check((await page.locator(`#onboarding-things tr[data-slug="${slug}"]`).count()) === 0, `the dry run created nothing (${slug})`);
  }
  const stored = await page.evaluate(async ({ key, org }) => {
    const r = await fetch(`/v1/admin/things?org=${org}`, { headers: { Authorization: `Bearer ${key}` } });
    return (await r.json()).things.map((/** @type {{ slug: string }} */ x) => x.slug);
  }, { key: scenario.admin_key, org: scenario.org });
  check(scenario.import_slugs.every((/** @type {string} */ s) => !stored.includes(s)), `the API holds none of them after the dry run: ${stored}`);
  check(await page.isVisible('#import-run'), 'the import is offered after the dry run');
  await accessible('an import dry run');
  await shot('02-dry-run');
  await page.click('#import-run');
  await page.waitForSelector('#import-report[data-dry-run="false"]');
  for (const slug of scenario.import_slugs) await page.waitForSelector(`#onboarding-things tr[data-slug="${slug}"]`);
  check(true, 'the import created every thing of the file');
  check(!(await page.isVisible('#import-run')), 'the import is not offered twice');

  // A file with bad lines: each named, nothing changed.
  await chooseFile('bad.csv', scenario.bad_csv);
  await page.click('#import-dry-run');
  await page.waitForSelector('#import-errors tbody tr');
  const named = await page.$$eval('#import-errors tbody tr', (rows) => rows.map((r) => Number(r.children[0]?.textContent)));
  const bad = [...new Set(named)].sort((a, b) => a - b);
  check(JSON.stringify(bad) === JSON.stringify(scenario.bad_lines), `every bad line is named: ${bad}`);
  await accessible('a rejected import file');
  await shot('03-bad-file');

  // Replay the thing's rejected readings: a preview, then the replay; the count drops.
  await page.selectOption('#replay-thing', t.slug);
  await page.fill('#replay-reason', 'unknown_datastream');
  await page.click('#replay-preview-button');
  await page.waitForFunction((n) => document.querySelectorAll('#replay-preview tbody tr').length === n, scenario.dead_letters);
  check(true, `the preview shows the ${scenario.dead_letters} rejected readings the filter selects`);
  await page.click('#replay-run');
  await page.waitForSelector('#replay-report, #replay-result .error');
  check(!(await page.isVisible('#replay-result .error')), `the replay is done: ${await textOf('#replay-result')}`);
  const report = await page.$eval('#replay-report', (el) => ({ ...(/** @type {HTMLElement} */ (el)).dataset }));
  check(Number(report.selected) === scenario.dead_letters && Number(report.stored) === scenario.dead_letters, `the replay stored them: ${JSON.stringify(report)}`);
  await page.waitForFunction((slug) => document.querySelector(`#onboarding-things tr[data-slug="${slug}"]`)?.getAttribute('data-dead-letters') === '0', t.slug);
  check(true, "the thing's count of rejected messages dropped to 0");
  await page.waitForFunction(() => [...document.querySelectorAll('#replay-preview tbody tr')].every((r) => r.getAttribute('data-result') === 'stored'));
  check(true, 'the preview shows each as stored by the replay');
  await accessible("a replay's report");
  await shot('04-replay');

  await signOut();

  // --- The operator picks the organisation it onboards. ----------------------
  await signIn(scenario.operator_token);
  await page.click('#nav-onboarding');
  await page.waitForSelector('#onboarding-org');
  await page.selectOption('#onboarding-org', scenario.org);
  await page.waitForSelector(`#onboarding-things tr[data-slug="${scenario.new_thing.slug}"]`);
  check(true, "the operator onboards the organisation it picks, and sees its things");
  await accessible("the operator's onboarding");
  check(errors.length === 0, `no errors in the page: ${errors.join(' | ')}`);
} catch (error) {
  failed = error;
}
await done(failed);
