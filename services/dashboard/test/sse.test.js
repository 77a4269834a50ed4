// @ts-check
// Server-sent events cut from text however it is split into chunks.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { eventReader } from '../src/sse.js';

const STREAM = ': keep-alive\n\nevent: snapshot\ndata: {"a":1,\ndata: "b":2}\n\nevent: latest\ndata:{"values":[]}\n\ndata: plain\n\nevent: empty\n\n';
const EXPECTED = [
  ['snapshot', '{"a":1,\n"b":2}'],
  ['latest', '{"values":[]}'],
  ['message', 'plain'],
];

/** @param {string[]} chunks */
function read(chunks) {
  /** @type {string[][]} */
  const events = [];
  const reader = eventReader((name, data) => events.push([name, data]));
  for (const c of chunks) reader.push(c);
  return events;
}

test('events in one chunk', () => {
  assert.deepEqual(read([STREAM]), EXPECTED);
});

test('events cut at every point, blank lines between two chunks included', () => {
  for (let i = 0; i <= STREAM.length; i++) assert.deepEqual(read([STREAM.slice(0, i), STREAM.slice(i)]), EXPECTED, `cut at ${i}`);
  assert.deepEqual(read([...STREAM]), EXPECTED, 'one character a chunk');
});

test('CRLF and CR line ends, also cut between CR and LF', () => {
  const crlf = STREAM.replace(/\n/g, '\r\n');
  for (let i = 0; i <= crlf.length; i++) assert.deepEqual(read([crlf.slice(0, i), crlf.slice(i)]), EXPECTED, `cut at ${i}`);
  assert.deepEqual(read([STREAM.replace(/\n/g, '\r')]), EXPECTED);
});

test('an event of megabytes in small chunks is read whole', () => {
  const big = `event: snapshot\ndata: ${'x'.repeat(20_000_000)}\n\n`;
  const chunks = [];
  for (let i = 0; i < big.length; i += 16384) chunks.push(big.slice(i, i + 16384));
  const events = read(chunks);
  assert.equal(events.length, 1);
  assert.equal(events[0][1].length, 20_000_000);
});
