// @ts-check
// Data quality as the dashboard shows it: which requests give the badges
// (bounded, an organisation's list where the caller owns it), the badges from
// the answers, a status and a share in words, and gaps as the chart's ranges.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MAX_ORG_REQUESTS, MAX_STREAM_REQUESTS, badgeLabel, badgesOfOrganisation, durationText, gapRanges, percent, qualityRequests } from '../src/quality.js';

/**
 * @param {number} n
 * @param {string} org
 * @param {number} [first]
 */
function streams(n, org, first = 1) {
  return Array.from({ length: n }, (_, i) => ({ id: first + i, org }));
}

/**
 * The caller as /v1/me gives it, with the parts the plan reads.
 * @param {Record<string, any>} parts
 * @returns {any}
 */
const me = (parts) => ({ operator: false, role: 'reader', organisation: null, ...parts });

test('the public asks nothing', () => {
  assert.deepEqual(qualityRequests(streams(3, 'stadt'), null), { orgs: [], streams: [] });
});

test("an organisation's admin asks its own list once and the others' datastreams one by one", () => {
  const shown = [...streams(30, 'stadtwerk'), ...streams(3, 'movi', 100)];
  const plan = qualityRequests(shown, me({ role: 'admin', organisation: { slug: 'stadtwerk' } }));
  assert.deepEqual(plan, { orgs: ['stadtwerk'], streams: [100, 101, 102] });
  const owner = qualityRequests(shown, me({ role: 'data_owner', organisation: { slug: 'stadtwerk' } }));
  assert.deepEqual(owner.orgs, ['stadtwerk']);
});

test('a reader asks single datastreams only, at most the bound, in the order shown', () => {
  const plan = qualityRequests(streams(40, 'stadt'), me({ role: 'reader', organisation: { slug: 'stadt' } }));
  assert.deepEqual(plan.orgs, []);
  assert.equal(plan.streams.length, MAX_STREAM_REQUESTS);
  assert.deepEqual(plan.streams.slice(0, 3), [1, 2, 3]);
});

test('the operator asks organisation lists, at most the bound; the rest one by one', () => {
  const shown = Array.from({ length: MAX_ORG_REQUESTS + 2 }, (_, i) => streams(2, `org-${i}`, 10 * i + 1)).flat();
  const plan = qualityRequests(shown, me({ operator: true }));
  assert.equal(plan.orgs.length, MAX_ORG_REQUESTS);
  assert.deepEqual(plan.streams, [51, 52, 61, 62]);
});

test('known badges and a spent budget ask nothing more', () => {
  const admin = me({ role: 'reader', organisation: { slug: 'stadt' } });
  assert.deepEqual(qualityRequests(streams(3, 'stadt'), admin, new Set([1, 3])).streams, [2]);
  assert.deepEqual(qualityRequests(streams(3, 'stadt'), admin, new Set(), { orgs: 0, streams: 0 }), { orgs: [], streams: [] });
  assert.deepEqual(qualityRequests(streams(5, 'stadt'), admin, new Set(), { orgs: 0, streams: 2 }).streams, [1, 2]);
});

test("an organisation's list: the listed as listed, its other datastreams unremarkable", () => {
  const badges = badgesOfOrganisation(
    /** @type {any} */ ({ org: 'stadtwerk', datastreams: [{ datastream: 2, status: 'silent' }, { datastream: 4, status: 'degraded' }] }),
    [1, 2, 3, 4],
  );
  assert.deepEqual([...badges], [[1, 'unremarkable'], [2, 'silent'], [3, 'unremarkable'], [4, 'degraded']]);
});

test('badges, shares and intervals in words', () => {
  assert.equal(badgeLabel('silent', 'de'), 'verstummt');
  assert.equal(badgeLabel('degraded', 'en'), 'degraded');
  assert.equal(badgeLabel('unremarkable', 'de'), 'unauffällig');
  assert.equal(badgeLabel('novel', 'de'), 'novel');
  assert.equal(percent(0.9234, 'de', '—'), '92,3 %');
  assert.equal(percent(1, 'en', '—'), '100 %');
  assert.equal(percent(0, 'en', '—'), '0 %', 'none out of range is a share');
  assert.equal(percent(null, 'en', '—'), '—');
  assert.equal(durationText(30, 'de', '—'), '30 s');
  assert.equal(durationText(300, 'de', '—'), '5 Min.');
  assert.equal(durationText(90, 'en', '—'), '1.5 min');
  assert.equal(durationText(7200, 'en', '—'), '2 h');
  assert.equal(durationText(null, 'en', '—'), '—');
});

test("gaps as the chart's ranges in seconds, clipped to the range shown", () => {
  const from = Date.parse('2026-11-29T00:00:00Z');
  const to = Date.parse('2026-11-30T00:00:00Z');
  const gaps = [
    { from: '2026-11-28T22:00:00Z', to: '2026-11-29T01:00:00Z' },
    { from: '2026-11-29T10:00:00Z', to: '2026-11-29T11:30:00Z' },
    { from: '2026-11-27T10:00:00Z', to: '2026-11-27T11:00:00Z' },
  ];
  assert.deepEqual(gapRanges(gaps, from, to), [
    [from / 1000, Date.parse('2026-11-29T01:00:00Z') / 1000],
    [Date.parse('2026-11-29T10:00:00Z') / 1000, Date.parse('2026-11-29T11:30:00Z') / 1000],
  ]);
  assert.deepEqual(gapRanges(null, from, to), []);
});
