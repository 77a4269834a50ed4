// @ts-check
// Shared by the browser scenarios: Debian's chromium through playwright-core
// (no downloaded browser), a fresh profile, map tiles cut off (no internet
// here), screenshots, checks that end the run with a non-zero exit code, and
// accessibility checks of each view with axe-core (WCAG 2.1 A and AA).
//
//   HOHEIT_E2E_BASE        the API's base URL (serving the dashboard at /)
//   <scenario variable>    JSON set by the Rust test: keys, ids, expected values
//   HOHEIT_E2E_SCREENSHOTS directory for screenshots
//   HOHEIT_E2E_CHROMIUM    the browser (default /usr/bin/chromium)

import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/** axe-core's script, evaluated in the page (CDP evaluation: the page's CSP allows no inline script). */
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** The rules checked: WCAG 2.0 and 2.1, levels A and AA. */
const WCAG = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

/**
 * A violation as printed: rule, impact, help and the offending elements' selectors.
 * @typedef {{ id: string, impact: string, help: string, nodes: string[] }} Violation
 */

/**
 * Starts the browser on a fresh profile for the scenario in `scenarioVariable` (JSON).
 * @param {string} scenarioVariable
 */
export async function launch(scenarioVariable) {
  const base = process.env.HOHEIT_E2E_BASE;
  const scenario = JSON.parse(process.env[scenarioVariable] || 'null');
  const shots = process.env.HOHEIT_E2E_SCREENSHOTS || 'screenshots';
  const executablePath = process.env.HOHEIT_E2E_CHROMIUM || '/usr/bin/chromium';
  if (!base || !scenario) {
    console.error(`HOHEIT_E2E_BASE and ${scenarioVariable} must be set (tests/it/dashboard.rs does)`);
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
  /** @type {string[]} */
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/tile|Failed to load resource/i.test(m.text())) errors.push(m.text());
  });
  // No internet here: map tiles fail; the markers must show anyway.
  await page.route(/tile\.openstreetmap\.org/, (route) => route.abort('internetdisconnected'));
  const prefix = scenario.screenshot_prefix || '';
  rmSync(join(shots, `${prefix}failure.png`), { force: true });
  /** @param {string} name */
  const shot = (name) => page.screenshot({ path: join(shots, `${prefix}${name}.png`), fullPage: true });
  /**
   * @param {unknown} condition
   * @param {string} what
   */
  const check = (condition, what) => {
    if (!condition) throw new Error(`check failed: ${what}`);
    console.log(`ok: ${what}`);
  };
  /**
   * Runs axe-core on the page as it is now; fails on any WCAG 2.1 A/AA violation.
   * @param {string} view what is shown, for the message
   */
  const accessible = async (view) => {
    if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
    /** @type {Violation[]} */
    const violations = await page.evaluate(async (tags) => {
      const axe = /** @type {typeof import('axe-core')} */ (/** @type {any} */ (window).axe);
      const results = await axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
      return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact || 'unknown',
        help: v.help,
        nodes: v.nodes.map((n) => n.target.join(' ')),
      }));
    }, WCAG);
    if (violations.length) {
      const lines = violations.map((v) => `  ${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `    ${n}`).join('\n')}`);
      throw new Error(`accessibility (axe-core, ${WCAG.join(', ')}) of ${view}:\n${lines.join('\n')}`);
    }
    console.log(`ok: ${view} has no WCAG 2.1 A/AA violation (axe-core)`);
  };
  /**
   * Ends the run: exit code 0 only without a failure.
   * @param {unknown} failure
   */
  const done = async (failure) => {
    if (failure) {
      console.error(`FAILED: ${failure instanceof Error ? failure.message : String(failure)}`);
      await shot('failure').catch(() => {});
    }
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    process.exit(failure ? 1 : 0);
  };
  return { base, scenario, page, context, shot, check, accessible, errors, done };
}
