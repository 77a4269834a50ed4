// Shared by the browser scenarios: Debian's chromium through playwright-core
// (no downloaded browser), a fresh profile, map tiles cut off (no internet
// here), screenshots, and checks that end the run with a non-zero exit code.
//
//   HOHEIT_E2E_BASE        the API's base URL (serving the dashboard at /)
//   <scenario variable>    JSON set by the Rust test: keys, ids, expected values
//   HOHEIT_E2E_SCREENSHOTS directory for screenshots
//   HOHEIT_E2E_CHROMIUM    the browser (default /usr/bin/chromium)

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export async function launch(scenarioVariable) {
  const base = process.env.HOHEIT_E2E_BASE;
  const scenario = JSON.parse(process.env[scenarioVariable] || 'null');
  const shots = process.env.HOHEIT_E2E_SCREENSHOTS || 'screenshots';
  const executablePath = process.env.HOHEIT_E2E_CHROMIUM || '/usr/bin/chromium';
  if (!base || !scenario) {
    console.error(`HOHEIT_E2E_BASE and ${scenarioVariable} must be set (tests/dashboard.rs does)`);
    process.exit(2);
  }
  mkdirSync(shots, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'hoheit-e2e-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1024, height: 900 }, // a tablet in landscape
    locale: 'de-DE',
    acceptDownloads: true,
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/tile|Failed to load resource/i.test(m.text())) errors.push(m.text());
  });
  // No internet here: map tiles fail; the markers must show anyway.
  await page.route(/tile\.openstreetmap\.org/, (route) => route.abort('internetdisconnected'));
  const prefix = scenario.screenshot_prefix || '';
  rmSync(join(shots, `${prefix}failure.png`), { force: true });
  const shot = (name) => page.screenshot({ path: join(shots, `${prefix}${name}.png`), fullPage: true });
  const check = (condition, what) => {
    if (!condition) throw new Error(`check failed: ${what}`);
    console.log(`ok: ${what}`);
  };
  /** Ends the run: exit code 0 only without a failure. */
  const done = async (failure) => {
    if (failure) {
      console.error(`FAILED: ${failure.message}`);
      await shot('failure').catch(() => {});
    }
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    process.exit(failure ? 1 : 0);
  };
  return { base, scenario, page, context, shot, check, errors, done };
}
