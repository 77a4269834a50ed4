// @ts-check
// How numbers, times, units and the shown points are written: for a given
// locale and "no value" text, so the rules are tested on their own
// (test/format.test.js); i18n.js applies them in the current language.

/**
 * The locale of a UI language.
 * @param {'de' | 'en'} lang
 */
export function localeOf(lang) {
  return lang === 'de' ? 'de-DE' : 'en-GB';
}

/**
 * A number with at most three decimals in the locale's digits; `none` for no number.
 * @param {number | null | undefined} v
 * @param {string} locale
 * @param {string} none
 */
export function formatNumber(v, locale, none) {
  if (v === null || v === undefined || Number.isNaN(v)) return none;
  return Number(v).toLocaleString(locale, { maximumFractionDigits: 3 });
}

/**
 * A point in time (RFC 3339) as the locale's short date and time with seconds, in local time.
 * @param {string | null | undefined} iso
 * @param {string} locale
 * @param {string} none
 */
export function formatTime(iso, locale, none) {
  if (!iso) return none;
  return new Date(iso).toLocaleString(locale, { dateStyle: 'short', timeStyle: 'medium' });
}

/**
 * A formatted value followed by its unit, if any.
 * @param {string} value
 * @param {string | null | undefined} unit
 */
export function withUnit(value, unit) {
  return `${value} ${unit || ''}`.trim();
}

/**
 * The unit as a label's suffix: " (°C)", or nothing.
 * @param {string | null | undefined} unit
 */
export function unitSuffix(unit) {
  return unit ? ` (${unit})` : '';
}

/**
 * Milliseconds since the epoch as RFC 3339 in UTC, whole seconds (the API's query format).
 * @param {number} ms
 */
export function isoSeconds(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Milliseconds since the epoch as the value of a datetime-local input (local time, minutes).
 * @param {number} ms
 */
export function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
}

/** @typedef {import('./types/api').components['schemas']['Observation']} Observation */
/** @typedef {import('./types/api').components['schemas']['Bucket']} Bucket */
/**
 * What a datastream's chart shows: raw readings or aggregates in buckets of `interval`.
 * @typedef {{ kind: 'raw', rows: Observation[], interval?: undefined }
 *   | { kind: 'aggregate', rows: Bucket[], interval?: string }} Shown
 */

/**
 * The shown points as CSV: `time,value` for raw readings, `time,avg,min,max,count` for
 * aggregates (min and max empty where personal data has none).
 * @param {Shown} shown
 */
export function csvOf(shown) {
  const lines = shown.kind === 'raw'
    ? ['time,value', ...shown.rows.map((r) => `${r.time},${r.value}`)]
    : ['time,avg,min,max,count', ...shown.rows.map((r) => `${r.time},${r.avg},${r.min ?? ''},${r.max ?? ''},${r.count}`)];
  return `${lines.join('\n')}\n`;
}
