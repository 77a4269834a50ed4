// @ts-check
// A tiny element builder: text from the API is always set as text, never as HTML.

/**
 * A child of an element: a node, text (numbers too), or nothing.
 * @typedef {Node | string | number | null | undefined | false} Child
 */

/**
 * An element with attributes (`on…` functions become listeners, `dataset` fills
 * data-*, `text` the text, `true` an empty attribute, null/undefined/false none).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Child | Child[])} children one level of arrays is flattened
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * A table with a caption, header cells and rows (a row element, or its cells).
 * @param {string | null} caption
 * @param {string[]} head
 * @param {(Node | Child[])[]} rows
 * @param {Record<string, any>} [attrs]
 */
export function table(caption, head, rows, attrs = {}) {
  return h(
    'table',
    attrs,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => h('td', {}, c)))))),
  );
}

/**
 * A labelled form control.
 * @param {string} label
 * @param {HTMLInputElement | HTMLSelectElement} control
 */
export function field(label, control) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}
