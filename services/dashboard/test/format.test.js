// @ts-check
// How numbers, times, units and the shown points are written.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { csvOf, formatNumber, formatTime, isoSeconds, localInput, localeOf, unitSuffix, withUnit } from '../src/format.js';

// Times are shown in the browser's zone: fix one with summer time for the tests.
process.env.TZ = 'Europe/Berlin';

test('each UI language has its locale', () => {
  assert.equal(localeOf('de'), 'de-DE');
  assert.equal(localeOf('en'), 'en-GB');
});

test('numbers: grouping and decimal mark of the locale, at most three decimals', () => {
  assert.equal(formatNumber(1234.56789, 'de-DE', '—'), '1.234,568');
  assert.equal(formatNumber(1234.56789, 'en-GB', '—'), '1,234.568');
  assert.equal(formatNumber(-0.5, 'de-DE', '—'), '-0,5');
  assert.equal(formatNumber(42, 'de-DE', '—'), '42');
  assert.equal(formatNumber(0, 'en-GB', '—'), '0', 'zero is a value, not a missing one');
});

test('numbers: no value is written as the "none" text', () => {
  for (const v of [null, undefined, Number.NaN]) assert.equal(formatNumber(v, 'de-DE', '—'), '—');
});

test('times: short date and time with seconds, in local time (summer and winter)', () => {
  assert.equal(formatTime('2026-03-01T09:05:07Z', 'de-DE', '—'), '01.03.26, 10:05:07');
  assert.equal(formatTime('2026-07-01T09:05:07Z', 'en-GB', '—'), '01/07/2026, 11:05:07');
  assert.equal(formatTime('2026-07-01T09:05:07.250+00:00', 'de-DE', '—'), '01.07.26, 11:05:07');
});

test('times: no time is written as the "none" text', () => {
  assert.equal(formatTime(null, 'de-DE', '—'), '—');
  assert.equal(formatTime('', 'en-GB', 'none'), 'none');
});

test('units follow the value, or nothing does', () => {
  assert.equal(withUnit('12,5', '°C'), '12,5 °C');
  assert.equal(withUnit('12,5', null), '12,5');
  assert.equal(withUnit('12,5', ''), '12,5');
  assert.equal(unitSuffix('count'), ' (count)');
  assert.equal(unitSuffix(undefined), '');
});

test('query times are UTC in whole seconds', () => {
  assert.equal(isoSeconds(Date.UTC(2026, 6, 1, 9, 5, 7, 999)), '2026-07-01T09:05:07Z');
  assert.equal(isoSeconds(0), '1970-01-01T00:00:00Z');
});

test('datetime-local inputs hold local time to the minute', () => {
  assert.equal(localInput(Date.UTC(2026, 6, 1, 9, 5, 7)), '2026-07-01T11:05');
  assert.equal(localInput(Date.UTC(2026, 0, 31, 23, 30)), '2026-02-01T00:30');
});

test('CSV of raw readings: time and value per line', () => {
  const csv = csvOf({
    kind: 'raw',
    rows: [
      { time: '2026-07-01T09:00:00Z', value: 10.5 },
      { time: '2026-07-01T09:03:00Z', value: -1 },
    ],
  });
  assert.equal(csv, 'time,value\n2026-07-01T09:00:00Z,10.5\n2026-07-01T09:03:00Z,-1\n');
});

test('CSV of aggregates: min and max are empty where personal data has none', () => {
  const csv = csvOf({
    kind: 'aggregate',
    interval: '15m',
    rows: [
      { time: '2026-07-01T09:00:00Z', avg: 11, min: 10, max: 12, count: 5 },
      { time: '2026-07-01T09:15:00Z', avg: 3.25, min: null, max: null, count: 4 },
    ],
  });
  assert.equal(csv, 'time,avg,min,max,count\n2026-07-01T09:00:00Z,11,10,12,5\n2026-07-01T09:15:00Z,3.25,,,4\n');
});

test('CSV without points is the header alone', () => {
  assert.equal(csvOf({ kind: 'raw', rows: [] }), 'time,value\n');
});
