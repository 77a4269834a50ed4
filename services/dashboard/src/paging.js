// @ts-check
// Pages of a long list: a town's registry holds hundreds of thousands of
// datastreams, and a table shows a page of them at a time. No DOM, so
// test/paging.test.js checks the arithmetic.

/** Rows a page of the datastream list shows. */
export const PAGE_SIZE = 100;

/**
 * One page of `rows`, the page number clamped to the pages there are (an empty list
 * has one, empty, page), with the 1-based positions of its first and last row
 * (0 and 0 when empty).
 * @template T
 * @param {T[]} rows
 * @param {number} page 0-based
 * @param {number} [size]
 * @returns {{ rows: T[], page: number, pages: number, first: number, last: number }}
 */
export function pageOf(rows, page, size = PAGE_SIZE) {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const at = Math.min(Math.max(0, Math.trunc(page) || 0), pages - 1);
  const shown = rows.slice(at * size, (at + 1) * size);
  return { rows: shown, page: at, pages, first: shown.length ? at * size + 1 : 0, last: at * size + shown.length };
}
