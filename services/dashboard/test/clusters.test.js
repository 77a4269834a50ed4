// @ts-check
// The map's things and their clusters.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CLUSTER_MAX_ZOOM, clusterIndex, thingsOf } from '../src/clusters.js';

/**
 * @param {number} n
 * @param {number} lat
 * @param {number} lon
 */
function stream(n, lat, lon) {
  return { id: n, org: 'stadt', thing: `t-${Math.floor(n / 2)}`, thing_name: null, latitude: lat, longitude: lon };
}

test('datastreams are grouped by their thing, in the order they come', () => {
  const things = thingsOf([stream(0, 52.8, 13.8), stream(1, 52.8, 13.8), stream(2, 52.9, 13.9), { ...stream(4, 0, 0), latitude: null }]);
  assert.deepEqual([...things.keys()], ['stadt/t-0', 'stadt/t-1', 'stadt/t-2']);
  assert.deepEqual(things.get('stadt/t-0')?.streams.map((d) => d.id), [0, 1]);
  assert.equal(things.get('stadt/t-2')?.lat, null);
  assert.equal(things.get('stadt/t-0')?.name, 't-0', 'a thing without a name is shown by its slug');
});

test('many things close together are one cluster counting them all, apart when zoomed in', () => {
  // 10,000 things on a 100 × 100 grid of about 1 km, and one thing far away.
  const streams = [];
  for (let i = 0; i < 10000; i++) streams.push(stream(2 * i, 52.8 + Math.floor(i / 100) * 1e-4, 13.8 + (i % 100) * 1e-4));
  streams.push(stream(2 * 10000, 48.1, 11.6));
  const things = [...thingsOf(streams).values()];
  assert.equal(things.length, 10001);
  const index = clusterIndex(things);
  assert.equal(index.size, 10001);
  const world = /** @type {[number, number, number, number]} */ ([-180, -85, 180, 85]);
  const far = index.at(world, 5);
  assert.equal(far.length, 2, 'the town is one cluster, the far thing another marker');
  const cluster = far.find((s) => s.kind === 'cluster');
  assert.ok(cluster && cluster.kind === 'cluster' && cluster.count === 10000, 'the cluster counts every thing in it');
  assert.ok(far.some((s) => s.kind === 'thing' && s.thing.key === `stadt/t-${10000}`), 'a lone thing is shown as itself');
  assert.ok(index.expansionZoom(cluster.id) > 5, 'a cluster falls apart when zoomed in');
  const close = index.at([13.8, 52.8, 13.8015, 52.8015], CLUSTER_MAX_ZOOM + 1);
  assert.ok(close.length > 1 && close.every((s) => s.kind === 'thing'), 'above the last cluster zoom every thing is its own marker');
});
