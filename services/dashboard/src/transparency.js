// @ts-check
// The public transparency report: who read which dataset how often, as bar
// charts (plain HTML, readable without a canvas) and a table.

import { getJson } from './api.js';
import { h, table } from './dom.js';
import { formatNumber, t } from './i18n.js';
import { orgLabel } from './labels.js';

/** @typedef {import('./types/api').components['schemas']['TransparencyReport']} TransparencyReport */

/**
 * A bar chart of totals, largest first.
 * @param {string} title
 * @param {Map<string, number>} totals
 * @param {string} id
 */
function bars(title, totals, id) {
  const max = Math.max(1, ...totals.values());
  const rows = [...totals.entries()].sort((a, b) => b[1] - a[1]);
  return h(
    'figure',
    { class: 'bars', id },
    h('figcaption', {}, title),
    h(
      'ul',
      {},
      rows.map(([label, n]) =>
        h(
          'li',
          {},
          h('span', { class: 'bar-label' }, label),
          h('span', { class: 'bar', style: `width: ${Math.max(2, (100 * n) / max)}%` }),
          h('span', { class: 'bar-value' }, formatNumber(n)),
        ),
      ),
    ),
  );
}

/** @param {import('./main.js').View} view */
export async function renderTransparency({ state, main }) {
  /** @type {TransparencyReport} */
  const report = await getJson('/v1/transparency');
  /** @type {Map<string, number>} */
  const byDataset = new Map();
  /** @type {Map<string, number>} */
  const byAccessor = new Map();
  // The accessor is an organisation's slug, or "public" for anonymous reads.
  const accessor = (/** @type {string} */ slug) => (slug === 'public' ? t('publicAccessor') : orgLabel(state.orgs, slug));
  for (const l of report.lines) {
    byDataset.set(l.dataset_title, (byDataset.get(l.dataset_title) || 0) + l.accesses);
    byAccessor.set(accessor(l.accessor), (byAccessor.get(accessor(l.accessor)) || 0) + l.accesses);
  }
  main.append(
    h('h2', {}, t('transparency')),
    h('p', {}, t('transparencyIntro')),
    h('div', { class: 'charts' }, bars(t('byDataset'), byDataset, 'by-dataset'), bars(t('byAccessor'), byAccessor, 'by-accessor')),
    h(
      'div',
      { class: 'scroll' },
      table(
        null,
        [t('month'), t('dataset'), t('classification'), t('accessor'), t('purpose'), t('contract'), t('accesses'), t('deniedShort')],
        report.lines.map((l) => [l.month, l.dataset_title, l.classification, accessor(l.accessor), l.purpose, l.contract_ref ?? t('none'), l.accesses, l.denied]),
        { id: 'transparency' },
      ),
    ),
  );
  return null;
}
