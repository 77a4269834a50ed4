// OIDC sign-in in the browser: authorization code with PKCE against the
// issuer that tests/dashboard.rs runs (its login needs no user: it redirects
// straight back with a code bound to the PKCE challenge, and its token
// endpoint checks the verifier). HOHEIT_E2E_OIDC: JSON with the datastream id
// and the values the signed-in department member must see.

import { launch } from './browser.mjs';

const { base, scenario, page, shot, check, errors, done } = await launch('HOHEIT_E2E_OIDC');

let failed = null;
try {
  await page.goto(`${base}/#/list`);
  await page.waitForSelector('#signin-oidc:not([hidden])');
  check((await page.locator('#streams tbody tr').count()) === 0, 'anonymous: the internal datastream is not listed');
  await page.click('#signin-oidc');
  await page.waitForSelector('body[data-session="oidc"]', { timeout: 15000 });
  check(new URL(page.url()).search === '', `the code is gone from the address bar: ${page.url()}`);
  check(new URL(page.url()).hash === '#/list', 'back on the view the sign-in started from');
  await page.waitForSelector(`#streams tbody tr[data-id="${scenario.stream_id}"]`);
  check(true, 'signed in through the issuer, the department member sees the internal datastream');
  const stored = await page.evaluate(() =>
    [localStorage, sessionStorage].flatMap((s) => Object.keys(s).map((k) => s.getItem(k))).join(' ') + document.cookie,
  );
  check(!stored.includes('eyJ') && !stored.includes('verifier'), 'no token and no PKCE verifier left in browser storage');
  await page.goto(`${base}/#/datastream/${scenario.stream_id}`);
  await page.waitForSelector('#points tbody tr');
  const values = await page.$$eval('#points tbody tr', (rows) => rows.map((r) => Number(r.dataset.value)));
  check(JSON.stringify(values) === JSON.stringify(scenario.values), `the chart shows the readings: ${values}`);
  await shot('09-oidc-datastream');
  await page.click('#signout');
  await page.waitForSelector('body[data-session="public"]');
  check(await page.isVisible('#signin-oidc'), 'after sign-out single sign-on is offered again');
  check(errors.length === 0, `no errors in the page: ${errors.join(' | ')}`);
} catch (error) {
  failed = error;
}
await done(failed);
