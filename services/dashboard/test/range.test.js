// @ts-check
// The chart's choice of data for a range: raw readings or aggregates, and which bucket width.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HOUR, PRESETS, aggregateInterval, aggregateRange, axisTicks, intervalFor, wantsRaw } from '../src/range.js';

const MINUTE = 60e3;
const DAY = 24 * HOUR;

test('the presets are 24 hours, 7 days and 30 days', () => {
  assert.deepEqual(PRESETS, { h24: DAY, d7: 7 * DAY, d30: 30 * DAY });
});

test('automatic resolution: raw readings up to 48 hours, aggregates beyond', () => {
  assert.equal(wantsRaw('auto', PRESETS.h24), true);
  assert.equal(wantsRaw('auto', 48 * HOUR), true);
  assert.equal(wantsRaw('auto', 48 * HOUR + 1), false);
  assert.equal(wantsRaw('auto', PRESETS.d7), false);
});

test('a chosen resolution wins over the range', () => {
  assert.equal(wantsRaw('raw', PRESETS.d30), true);
  assert.equal(wantsRaw('1h', HOUR), false);
  assert.equal(aggregateInterval('3h', HOUR, false), '3h');
  assert.equal(aggregateInterval('1m', PRESETS.d30, true), '1m');
});

test('the bucket gives about 600 buckets over the range', () => {
  assert.equal(intervalFor(10 * HOUR), '1m'); // 60 s buckets: 600
  assert.equal(intervalFor(PRESETS.h24), '5m'); // 144 s wanted
  assert.equal(intervalFor(PRESETS.d7), '30m'); // 1008 s wanted
  assert.equal(intervalFor(PRESETS.d30), '3h'); // 4320 s wanted: more than 1 h
  assert.equal(intervalFor(90 * DAY), '6h'); // 12960 s wanted
  assert.equal(intervalFor(300 * DAY), '12h'); // 43200 s wanted: exactly 12 h
  assert.equal(intervalFor(2 * 365 * DAY), '1d', 'the widest bucket for anything longer');
});

test('aggregates for a range of raw readings that were denied: at least 15 minutes', () => {
  assert.equal(aggregateInterval('auto', PRESETS.h24, true), '15m');
  assert.equal(aggregateInterval('raw', 10 * MINUTE, true), '15m');
  assert.equal(aggregateInterval('auto', PRESETS.d7, false), '30m');
  assert.equal(aggregateInterval('auto', PRESETS.h24, false), '5m');
});

test('quarter-hour buckets ask for whole quarter hours (the 15-minute rollup)', () => {
  const from = Date.UTC(2026, 2, 1, 10, 7, 30);
  const to = Date.UTC(2026, 2, 1, 13, 52, 0);
  assert.deepEqual(aggregateRange(from, to, '15m'), { from: Date.UTC(2026, 2, 1, 10, 0), to: Date.UTC(2026, 2, 1, 14, 0) });
  assert.deepEqual(aggregateRange(from, to, '1h'), { from: Date.UTC(2026, 2, 1, 10, 0), to: Date.UTC(2026, 2, 1, 14, 0) });
  const aligned = Date.UTC(2026, 2, 1, 10, 15);
  assert.deepEqual(aggregateRange(aligned, aligned + HOUR, '30m'), { from: aligned, to: aligned + HOUR });
});

test('finer buckets keep the range as asked', () => {
  const from = Date.UTC(2026, 2, 1, 10, 7, 30);
  const to = Date.UTC(2026, 2, 1, 10, 52, 0);
  assert.deepEqual(aggregateRange(from, to, '5m'), { from, to });
  assert.deepEqual(aggregateRange(from, to, '1m'), { from, to });
  assert.deepEqual(aggregateRange(from, to, '7m'), { from, to }, 'an interval the dashboard does not offer');
});

test('the time axis shows clock times for raw ranges and days beyond', () => {
  assert.deepEqual(axisTicks(PRESETS.h24), { hour: '2-digit', minute: '2-digit' });
  assert.deepEqual(axisTicks(PRESETS.d7), { day: '2-digit', month: '2-digit' });
});
