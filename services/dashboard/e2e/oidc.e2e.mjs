// @ts-check
// OIDC sign-in in the browser: authorization code with PKCE against an
// independent, OpenID Certified provider (oidc-provider, run by
// tests/it/dashboard.rs from tests/oidc-provider): the person signs in on the
// provider's own login and consent pages. HOHEIT_E2E_OIDC: JSON with the
// login name (the account's `sub`), the datastream id and the values the
// signed-in department member must see. The dashboard's views signed in
// this way are checked with axe-core (WCAG 2.1 A and AA).

import { launch } from './browser.mjs';

const { base, scenario, page, shot, check, accessible, errors, done } = await launch('HOHEIT_E2E_OIDC');

let failed = null;
try {
  await page.goto(`${base}/#/list`);
  await page.waitForSelector('#signin-oidc:not([hidden])');
  check((await page.locator('#streams tbody tr').count()) === 0, 'anonymous: the internal datastream is not listed');
  await page.click('#signin-oidc');
  await page.waitForSelector('input[name="login"]', { timeout: 15000 });
  check(new URL(page.url()).origin === scenario.issuer, `the provider's login page: ${page.url()}`);
  await shot('08-oidc-provider-login');
  await page.fill('input[name="login"]', scenario.login);
  await page.fill('input[name="password"]', 'any password');
  await page.click('button[type="submit"]');
  await page.waitForSelector('input[name="prompt"][value="consent"]', { state: 'attached', timeout: 15000 });
  await page.click('button[type="submit"]');
  await page.waitForSelector('body[data-session="oidc"]', { timeout: 15000 });
  check(new URL(page.url()).search === '', `the code is gone from the address bar: ${page.url()}`);
  check(new URL(page.url()).hash === '#/list', 'back on the view the sign-in started from');
  await page.waitForSelector(`#streams tbody tr[data-id="${scenario.stream_id}"]`);
  check(true, 'signed in through the provider, the department member sees the internal datastream');
  await accessible('the list, signed in with single sign-on');
  const stored = await page.evaluate(() =>
    [localStorage, sessionStorage].flatMap((s) => Object.keys(s).map((k) => s.getItem(k))).join(' ') + document.cookie,
  );
  check(!stored.includes('eyJ') && !stored.includes('verifier'), 'no token and no PKCE verifier left in browser storage');
  await page.goto(`${base}/#/datastream/${scenario.stream_id}`);
  await page.waitForSelector('#points tbody tr');
  const values = await page.$$eval('#points tbody tr', (rows) => rows.map((r) => Number(r.getAttribute('data-value'))));
  check(JSON.stringify(values) === JSON.stringify(scenario.values), `the chart shows the readings: ${values}`);
  await accessible("a datastream's chart, signed in with single sign-on");
  await shot('09-oidc-datastream');
  await page.click('#signout');
  await page.waitForSelector('body[data-session="public"]');
  check(await page.isVisible('#signin-oidc'), 'after sign-out single sign-on is offered again');
  check(errors.length === 0, `no errors in the page: ${errors.join(' | ')}`);
} catch (error) {
  failed = error;
}
await done(failed);
