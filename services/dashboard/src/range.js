// @ts-check
// Which data a datastream's chart shows for a time range: raw readings for
// short ranges, aggregates in buckets of about 600 per range for long ones
// (whole quarter hours come from the API's 15-minute rollup). Pure: no DOM,
// no requests, so the choice is tested on its own (test/range.test.js).

export const HOUR = 3600e3;
/** The preset ranges, in milliseconds back from now. */
export const PRESETS = { h24: 24 * HOUR, d7: 7 * 24 * HOUR, d30: 30 * 24 * HOUR };
/** Raw readings up to this range; beyond it aggregates. */
export const RAW_UP_TO = 48 * HOUR;
/** At most this many raw readings are fetched for one view (then: aggregates). */
export const RAW_MAX = 50000;
/** The bucket widths the API offers, with their length in seconds, finest first. */
export const INTERVALS = /** @type {const} */ ([
  ['1m', 60], ['5m', 300], ['15m', 900], ['30m', 1800], ['1h', 3600], ['3h', 10800], ['6h', 21600], ['12h', 43200], ['1d', 86400],
]);
const QUARTER = 900e3;

/**
 * The bucket width that gives about 600 buckets over the range, at least `minSeconds`.
 * @param {number} rangeMs
 * @param {number} [minSeconds]
 * @returns {string}
 */
export function intervalFor(rangeMs, minSeconds = 0) {
  const wanted = Math.max(rangeMs / 1000 / 600, minSeconds);
  return (INTERVALS.find(([, s]) => s >= wanted) || INTERVALS[INTERVALS.length - 1])[0];
}

/**
 * Whether raw readings are asked for first: chosen explicitly, or automatically for short ranges.
 * @param {string} resolution 'auto', 'raw' or an interval
 * @param {number} spanMs
 */
export function wantsRaw(resolution, spanMs) {
  return resolution === 'raw' || (resolution === 'auto' && spanMs <= RAW_UP_TO);
}

/**
 * The bucket width of aggregates: the chosen one, else one for the range; when raw
 * readings were wanted but denied, at least 15 minutes (the finest a grant allows).
 * @param {string} resolution
 * @param {number} spanMs
 * @param {boolean} wantedRaw
 */
export function aggregateInterval(resolution, spanMs, wantedRaw) {
  return resolution !== 'auto' && resolution !== 'raw' ? resolution : intervalFor(spanMs, wantedRaw ? 900 : 0);
}

/**
 * The range to ask aggregates for: widened to whole quarter hours when the
 * interval is made of them, so the API answers from its 15-minute rollup.
 * @param {number} from milliseconds
 * @param {number} to milliseconds
 * @param {string} interval
 * @returns {{ from: number, to: number }}
 */
export function aggregateRange(from, to, interval) {
  const seconds = INTERVALS.find(([i]) => i === interval)?.[1] ?? 0;
  if (seconds > 0 && seconds % 900 === 0) {
    return { from: Math.floor(from / QUARTER) * QUARTER, to: Math.ceil(to / QUARTER) * QUARTER };
  }
  return { from, to };
}

/**
 * The time axis' labels: days for ranges longer than raw readings cover, else clock times.
 * @param {number} spanMs
 * @returns {Intl.DateTimeFormatOptions}
 */
export function axisTicks(spanMs) {
  return spanMs > RAW_UP_TO ? { day: '2-digit', month: '2-digit' } : { hour: '2-digit', minute: '2-digit' };
}
