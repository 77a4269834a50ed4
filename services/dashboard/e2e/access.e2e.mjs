// @ts-check
// The labels people read and a licensee's "my access" in a real browser,
// driven by tests/it/dashboard.rs (HOHEIT_E2E_ACCESS: keys and what the page
// must show):
//
// - a unit as µg/m³, a grantee and an owner by name, a theme by its label, a
//   license by name;
// - a licensee's "my access": its organisation, role, key expiry, grant and
//   read log, actions in words.
//
// Every view is checked with axe-core.

import { launch } from './browser.mjs';

const { base, scenario, page, shot, check, accessible, errors, done } = await launch('HOHEIT_E2E_ACCESS');

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

let failed = null;
try {
  await page.goto(`${base}/#/map`);
  await signIn(scenario.admin_key);
  // --- Labels people read. ---------------------------------------------------
  await page.goto(`${base}/#/owner`);
  await page.waitForSelector('table.grants');
  const grants = await textOf('table.grants');
  check(grants.includes(scenario.grantee_name), `the grantee by name: ${grants}`);
  const heading = await textOf('section[aria-labelledby="h-grants"] h4');
  check(heading.includes(scenario.theme_label), `the theme by its label: ${heading}`);
  check(heading.includes(scenario.license_name), `the license by name: ${heading}`);
  await accessible("the owner's view with names and labels");
  await shot('01-labels');
  await page.goto(`${base}/#/list`);
  await page.waitForSelector(`#streams tr[data-id="${scenario.labelled_stream}"] td.latest`);
  await page.waitForFunction((id) => document.querySelector(`#streams tr[data-id="${id}"] td.latest`)?.getAttribute('data-value') !== '', scenario.labelled_stream);
  const cells = await page.$eval(`#streams tr[data-id="${scenario.labelled_stream}"]`, (r) => ({
    latest: r.querySelector('td.latest')?.textContent || '',
    theme: r.querySelector('td.theme')?.textContent || '',
    org: r.querySelector('td.org')?.textContent || '',
  }));
  check(cells.latest.endsWith(scenario.unit_label), `the unit as people write it: ${cells.latest}`);
  check(cells.theme === scenario.theme_label, `the theme by its label: ${cells.theme}`);
  check(cells.org === scenario.owner_name, `the owner by name: ${cells.org}`);
  await signOut();

  // --- A licensee: my access. ------------------------------------------------
  await signIn(scenario.third_party_key);
  await page.waitForSelector('#nav-access:not([hidden])');
  check(await page.isHidden('#nav-onboarding'), 'a reader is offered no onboarding');
  await page.click('#nav-access');
  await page.waitForSelector('#my-grants tbody tr');
  check((await textOf('#me-org')) === scenario.grantee_name, 'my access names the organisation');
  check((await textOf('#me-role')) === scenario.third_party_role, 'and the role');
  check((await textOf('#me-key-expires')).trim() !== '', "and the key's expiry");
  const mine = await textOf('#my-grants tbody');
  check(mine.includes(scenario.contract_ref) && mine.includes(scenario.owner_name), `the grant held, with its contract and grantor: ${mine}`);
  await page.waitForSelector('#my-reads tbody tr');
  const reads = await page.$$eval('#my-reads tbody tr', (rows) => rows.map((r) => r.getAttribute('data-action')));
  check(reads.includes('observations'), `the own read log: ${reads}`);
  check((await textOf('#my-reads')).includes(scenario.read_action_label), 'read actions in words');
  await accessible('my access');
  await shot('02-my-access');
  await signOut();
  check(errors.length === 0, `no errors in the page: ${errors.join(' | ')}`);
} catch (error) {
  failed = error;
}
await done(failed);
