// @ts-check
// Pages of the datastream list.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { PAGE_SIZE, pageOf } from '../src/paging.js';

const rows = Array.from({ length: 250 }, (_, i) => i + 1);

test('a page holds PAGE_SIZE rows and says where it stands', () => {
  const p = pageOf(rows, 1);
  assert.equal(p.rows.length, PAGE_SIZE);
  assert.deepEqual([p.page, p.pages, p.first, p.last], [1, 3, 101, 200]);
  assert.equal(p.rows[0], 101);
});

test('the last page holds the rest', () => {
  const p = pageOf(rows, 2);
  assert.deepEqual([p.rows.length, p.first, p.last], [50, 201, 250]);
});

test('a page past either end is clamped to the pages there are', () => {
  assert.equal(pageOf(rows, 7).page, 2);
  assert.equal(pageOf(rows, -3).page, 0);
  assert.equal(pageOf(rows, Number.NaN).page, 0);
});

test('an empty list has one empty page', () => {
  assert.deepEqual(pageOf([], 4), { rows: [], page: 0, pages: 1, first: 0, last: 0 });
});
