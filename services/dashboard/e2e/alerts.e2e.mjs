// @ts-check
// Alerts and data quality in a real browser, driven by tests/it/dashboard.rs
// (HOHEIT_E2E_ALERTS: keys, the datastream, the threshold and what the page
// must show):
//
// - a third party whose grant allows 15-minute aggregates asks for a rule on
//   raw readings and is told why not, in words;
// - a department member sees the datastream's quality panel with the day's
//   completeness, and its badge in the list;
// - it creates a threshold rule in the editor (no webhook secret without a
//   webhook) and sees it in the alerts view;
// - it prints `RULE_CREATED <id>`; the test then publishes readings above the
//   threshold through the real pipeline with the alerts service running, and
//   the view shows the rule firing, with the value, and its events on demand.
//
// Every view is checked with axe-core.

import { launch } from './browser.mjs';

const { base, scenario, page, shot, check, accessible, errors, done } = await launch('HOHEIT_E2E_ALERTS');

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
 * Fills the rule editor (open) for a rule above `threshold` on the datastream.
 * @param {{ name: string, threshold: number, aggregate?: string, webhook?: string }} rule
 */
async function fillRule(rule) {
  await page.waitForSelector('#rule-form');
  await page.fill('#rule-name', rule.name);
  await page.selectOption('#rule-datastream', String(scenario.stream_id));
  await page.selectOption('#rule-kind', 'above');
  await page.fill('#rule-threshold', String(rule.threshold));
  await page.fill('#rule-for', '0');
  await page.fill('#rule-hysteresis', '0');
  await page.selectOption('#rule-aggregate', rule.aggregate || '');
  await page.fill('#rule-webhook', rule.webhook || '');
}

let failed = null;
try {
  await page.goto(`${base}/#/map`);

  // --- A third party with aggregates only: a raw rule is refused, in words. ----
  await signIn(scenario.third_party_key);
  await page.waitForSelector('#nav-alerts:not([hidden])');
  await page.click('#nav-alerts');
  await page.waitForSelector('#alerts-count');
  await accessible('the alerts view without rules');
  await page.click('#rule-new');
  await fillRule({ name: 'Roh', threshold: scenario.threshold });
  await page.click('#rule-save');
  await page.waitForSelector('#rule-error');
  const refusal = await textOf('#rule-error');
  check(refusal.includes(scenario.refusal_words), `a raw rule under an aggregate-only grant is refused in words: ${refusal}`);
  await accessible('the rule editor with a refusal');
  await shot('01-rule-refused');
  await signOut();

  // --- A department member: the datastream's quality, then a rule. ------------
  await signIn(scenario.department_key);
  await page.goto(`${base}/#/datastream/${scenario.stream_id}`);
  await page.waitForSelector('#quality-days li');
  const days = await page.$$eval('#quality-days li', (items) => items.map((li) => ({ day: li.getAttribute('data-day'), completeness: li.getAttribute('data-completeness') })));
  const today = days.find((d) => d.day === scenario.today);
  check(today && Number(today.completeness) > 0, `the quality panel shows today's completeness: ${JSON.stringify(days)}`);
  check((await textOf('#quality-status')).trim() !== '', 'and the status');
  await accessible("a datastream's quality panel");
  await shot('02-quality');
  await page.goto(`${base}/#/list`);
  await page.waitForSelector(`#streams tr[data-id="${scenario.stream_id}"] td.quality [data-quality]`);
  check(true, 'the list shows its quality badge');
  await accessible('the list with quality badges');
  await page.click('#nav-alerts');
  await page.waitForSelector('#alerts-count');
  await page.click('#rule-new');
  await fillRule({ name: scenario.rule_name, threshold: scenario.threshold });
  await accessible('the rule editor');
  await shot('03-rule-editor');
  await page.click('#rule-save');
  await page.waitForSelector('#alerts li[data-rule]');
  check(await page.isHidden('#webhook-secret'), 'no webhook, no secret shown');
  const id = await page.$eval('#alerts li[data-rule]', (li) => li.getAttribute('data-rule'));
  const card = `#alerts li[data-rule="${id}"]`;
  check((await textOf(card)).includes(scenario.rule_name), 'the new rule is listed');
  const condition = await textOf(`${card} .condition`);
  check(condition === scenario.condition_text, `its condition in words: ${condition}`);
  console.log(`RULE_CREATED ${id}`);

  // --- Readings above the threshold arrive: the rule fires. --------------------
  await page.waitForSelector(`${card}[data-status="firing"]`, { timeout: 120000 });
  const fired = await textOf(`${card} .fired`);
  check(fired.includes(scenario.fired_value_text), `the view shows it firing with the value: ${fired}`);
  check((await page.$eval('#alerts li', (li) => li.getAttribute('data-status'))) === 'firing', 'firing first');
  await page.click(`${card} .rule-events`);
  await page.waitForSelector(`${card} .rule-events-table tbody tr[data-state="firing"]`);
  check(true, 'its events on demand: the firing');
  await page.click(`${card} .rule-deliveries`);
  await page.waitForSelector(`${card} .rule-deliveries-table`);
  check(true, 'its delivery log on demand');
  await accessible('the alerts view with a firing rule');
  await shot('04-alert-firing');

  await signOut();
  check(errors.length === 0, `no errors in the page: ${errors.join(' | ')}`);
} catch (error) {
  failed = error;
}
await done(failed);
