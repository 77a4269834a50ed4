// @ts-check
// The dashboard with a town's whole registry (issue 18): hundreds of thousands
// of open datastreams registered in the test's database (tests/it/dashboard.rs,
// HOHEIT_E2E_SCALE: how many datastreams and things, the first and second
// page's first ids, a thing to search for). It measures the time to first paint
// of the map and of the list, each on a fresh page load, and prints it (the
// `FIRST_PAINT` line; no threshold here), then checks that the map clusters
// the things, a cluster opens when clicked, the list pages and its search
// narrows, and that both views pass axe-core (WCAG 2.1 A and AA).

import { launch } from './browser.mjs';

const { base, scenario, page, shot, check, accessible, errors, done } = await launch('HOHEIT_E2E_SCALE');
const LONG = { timeout: 120000 };

/**
 * Opens `view` on a fresh page load and answers the milliseconds from the
 * navigation's start to the first animation frame in which it is shown
 * (`paintedAt`, evaluated in the page, answers `performance.now()` then, 0 before).
 * @param {string} view
 * @param {() => number} paintedAt
 */
async function firstPaint(view, paintedAt) {
  await page.goto('about:blank');
  await page.goto(`${base}/#/${view}`);
  // An error the dashboard shows (e.g. the API's refusal) ends the wait at once.
  const failed = page.waitForSelector('#message:not([hidden])', LONG).then(async () => {
    throw new Error(`the dashboard shows an error: ${await page.textContent('#message')}`);
  });
  const painted = page.waitForFunction(paintedAt, null, { ...LONG, polling: 'raf' }).then(async (at) => Math.round(Number(await at.jsonValue())));
  failed.catch(() => {});
  return Promise.race([painted, failed]);
}

/** @param {string} selector */
async function dataOf(selector) {
  return page.$eval(selector, (el) => ({ ...(/** @type {HTMLElement} */ (el)).dataset }));
}

let failed = null;
try {
  // The map, on a fresh load: every thing placed, drawn as far fewer clusters.
  const mapMs = await firstPaint('map', () =>
    document.querySelector('#map[data-drawn] .leaflet-interactive') && document.querySelector('ul.things > li') ? performance.now() : 0,
  );
  let map = await dataOf('#map');
  check(Number(map.markers) === scenario.things, `the map places every thing: ${map.markers} of ${scenario.things}`);
  check(Number(map.clusters) >= 1 && Number(map.drawn) < 200, `the map draws clusters, not every thing: ${map.drawn} markers, ${map.clusters} of them clusters`);
  const legend = await page.locator('ul.things > li').count();
  check(legend <= 51 && (await page.locator('ul.things > li.more').count()) === 1, `the list beside the map names a few things in view and how many more: ${legend} items`);
  await accessible('the map of a large registry');
  await shot('01-scale-map');
  const zoom = Number(map.zoom);
  await page.locator('path.cluster').first().click();
  await page.waitForFunction((z) => Number(document.querySelector('#map')?.getAttribute('data-zoom')) > z, zoom);
  map = await dataOf('#map');
  check(Number(map.zoom) > zoom, `clicking a cluster zooms into it: zoom ${zoom} → ${map.zoom}`);

  // The list, on a fresh load.
  const listMs = await firstPaint('list', () => (document.querySelector('#streams tbody tr') ? performance.now() : 0));
  console.log(`FIRST_PAINT datastreams=${scenario.datastreams} things=${scenario.things} map_ms=${mapMs} list_ms=${listMs}`);

  // A page of 100, the next page, the search.
  const ids = async () => page.$$eval('#streams tbody tr', (rows) => rows.map((r) => Number(r.getAttribute('data-id'))));
  let shown = await ids();
  check(shown.length === 100 && shown[0] === scenario.first_id, `the list shows the first page of 100: ${shown.length} rows from ${shown[0]}`);
  check((await page.textContent('#list-count'))?.includes(String(scenario.datastreams)), 'the list says how many datastreams there are');
  await accessible('the list of a large registry');
  await shot('02-scale-list');
  await page.click('#list-next');
  await page.waitForFunction((id) => document.querySelector('#streams tbody tr')?.getAttribute('data-id') === String(id), scenario.second_page_first_id);
  check(true, `the next page starts at ${scenario.second_page_first_id}`);
  check((await page.evaluate(() => document.activeElement?.id)) === 'list-next', 'the focus stays on the page button');
  await page.keyboard.press('Shift+Tab');
  check((await page.evaluate(() => document.activeElement?.id)) === 'list-previous', 'keyboard: the previous page button is reached');
  await page.keyboard.press('Enter');
  await page.waitForFunction((id) => document.querySelector('#streams tbody tr')?.getAttribute('data-id') === String(id), scenario.first_id);
  check(true, 'keyboard: Enter turns back to the first page');
  await page.fill('#filter-search', scenario.search);
  await page.waitForFunction((n) => document.querySelectorAll('#streams tbody tr').length === n, scenario.search_hits);
  check(true, `searching "${scenario.search}" leaves its ${scenario.search_hits} datastreams`);
  check(errors.length === 0, `no errors in the page: ${errors.join(' | ')}`);
} catch (error) {
  failed = error;
}
await done(failed);
