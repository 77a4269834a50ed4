// @ts-check
// One datastream: a uPlot chart over a range (24 h, 7 d, 30 d or custom),
// raw readings for short ranges and aggregates with a min/max band for long
// ones, unit and license, the shown points as a table and as CSV, and its
// data quality (qualityview.js), whose gaps the chart shades. A denial of the
// API (403) is shown with the reason it gave.

import uPlot from 'uplot';
import { ApiProblem, getJson, query } from './api.js';
import { h, field, table } from './dom.js';
import { csvOf, isoSeconds as iso, localInput, unitSuffix } from './format.js';
import { formatNumber, formatTime, formatValue, license, locale, t, unit as unitName } from './i18n.js';
import { INTERVALS, PRESETS, RAW_MAX, aggregateInterval, aggregateRange, axisTicks, wantsRaw } from './range.js';
import { gapRanges } from './quality.js';
import { qualityPanel } from './qualityview.js';

/** @typedef {import('./types/api').components['schemas']['Observation']} Observation */
/** @typedef {import('./types/api').components['schemas']['ObservationPage']} ObservationPage */
/** @typedef {import('./types/api').components['schemas']['AggregatePage']} AggregatePage */
/** @typedef {import('./types/api').components['schemas']['Datastream']} Datastream */
/** @typedef {import('./main.js').View} View */
/** @typedef {import('./main.js').LiveDatastream} LiveDatastream */
/** @typedef {import('./format.js').Shown} Shown */

/**
 * Raw readings of the range, page by page, up to RAW_MAX.
 * @param {number} id
 * @param {number} from
 * @param {number} to
 */
async function fetchRaw(id, from, to) {
  /** @type {Observation[]} */
  const out = [];
  /** @type {string | null | undefined} */
  let cursor;
  do {
    /** @type {ObservationPage} */
    const page = await getJson(`/v1/datastreams/${id}/observations${query({ from: iso(from), to: iso(to), limit: 10000, cursor })}`);
    out.push(...page.observations);
    cursor = page.next_cursor;
  } while (cursor && out.length < RAW_MAX);
  return out;
}

/**
 * Aggregates of the range in buckets of `interval`.
 * @param {number} id
 * @param {number} from
 * @param {number} to
 * @param {string} interval
 * @returns {Promise<AggregatePage>}
 */
async function fetchAggregates(id, from, to, interval) {
  ({ from, to } = aggregateRange(from, to, interval));
  return getJson(`/v1/datastreams/${id}/aggregates${query({ from: iso(from), to: iso(to), interval })}`);
}

/**
 * What the view shows of a datastream: from the live snapshot, or (opened by
 * link, not in it) as the API answers for it alone.
 * @typedef {LiveDatastream | (Datastream & { id: number, raw: boolean, thing_name?: undefined, dataset_id?: undefined })} ShownDatastream
 */

/**
 * A datastream not in the snapshot (e.g. opened by link): asked for, to get the API's reason if it is hidden.
 * @param {number} id
 * @returns {Promise<ShownDatastream>}
 */
async function alone(id) {
  /** @type {Datastream} */
  const one = await getJson(`/v1/datastreams/${id}`);
  return { ...one, id, raw: one.latest_value != null };
}

/**
 * @param {View} view
 * @param {number} id
 */
export async function renderDatastream({ state, main, showMessage }, id) {
  /** @type {ShownDatastream} */
  const d = state.streams.get(id) || (await alone(id));
  const dataset = d.dataset_id ? state.datasets.get(d.dataset_id) : undefined;
  /** @type {{ preset: string, from: number, to: number }} */
  let range = { preset: 'h24', from: Date.now() - PRESETS.h24, to: Date.now() };
  let resolution = 'auto';

  const denial = h('div', { class: 'denial', role: 'alert', hidden: true });
  const status = h('p', { class: 'status', 'aria-live': 'polite' });
  const chartEl = h('div', { class: 'chart', id: 'chart', role: 'img', 'aria-label': d.name });
  const gapNote = h('p', { class: 'gap-note', id: 'gap-note', hidden: true });
  /** @type {import('./quality.js').Gap[]} */
  let gaps = [];
  const quality = qualityPanel(id, (found) => {
    gaps = found;
    shadeGaps();
    plot?.redraw(false, false);
  });
  const tableBox = h('div', { class: 'scroll' });
  const download = h('a', { class: 'button', id: 'download-csv', download: `datastream-${id}.csv`, href: '#', hidden: true }, t('downloadCsv'));
  const fromInput = h('input', { type: 'datetime-local', id: 'range-from', value: localInput(range.from) });
  const toInput = h('input', { type: 'datetime-local', id: 'range-to', value: localInput(range.to) });
  const custom = h(
    'form',
    {
      class: 'custom-range',
      hidden: true,
      onsubmit: (/** @type {SubmitEvent} */ e) => {
        e.preventDefault();
        const from = new Date(fromInput.value).getTime();
        const to = new Date(toInput.value).getTime();
        if (Number.isFinite(from) && Number.isFinite(to) && from < to) {
          range = { preset: 'custom', from, to };
          show();
        }
      },
    },
    field(t('from'), fromInput),
    field(t('to'), toInput),
    h('button', { type: 'submit' }, t('show')),
  );
  const presetButtons = /** @type {const} */ (['h24', 'd7', 'd30', 'custom']).map((p) =>
    h('button', {
      type: 'button',
      class: 'preset',
      'data-preset': p,
      'aria-pressed': p === range.preset ? 'true' : 'false',
      onclick: () => {
        for (const b of presetButtons) b.setAttribute('aria-pressed', b === presetButtons.find((x) => x.dataset.preset === p) ? 'true' : 'false');
        custom.hidden = p !== 'custom';
        if (p !== 'custom') {
          range = { preset: p, from: Date.now() - PRESETS[p], to: Date.now() };
          show();
        } else {
          fromInput.focus();
        }
      },
    }, t(p)),
  );
  const resolutionSelect = h(
    'select',
    { id: 'resolution', onchange: (/** @type {Event} */ e) => { resolution = /** @type {HTMLSelectElement} */ (e.target).value; show(); } },
    h('option', { value: 'auto' }, t('auto')),
    h('option', { value: 'raw' }, t('raw')),
    ...INTERVALS.map(([i]) => h('option', { value: i }, `${t('aggregates')} ${i}`)),
  );

  main.append(
    h('p', {}, h('a', { href: '#/list' }, `← ${t('back')}`)),
    h('h2', {}, d.name),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, t('thing')), h('dd', {}, d.thing_name || d.thing),
      h('dt', {}, t('unit')), h('dd', { id: 'unit', dataset: { code: d.unit || '' } }, d.unit ? unitName(d.unit) : t('none')),
      h('dt', {}, t('dataset')), h('dd', {}, dataset?.title || t('none')),
      h('dt', {}, t('classification')), h('dd', {}, dataset?.classification || 'internal'),
      h('dt', {}, t('license')), h('dd', { id: 'license' }, license(dataset?.license)),
      h('dt', {}, t('latest')), h('dd', { id: 'latest' }, d.latest_value != null ? `${formatValue(d.latest_value, d.unit)} (${formatTime(d.latest_time)})` : t('none')),
    ),
    h('div', { class: 'range', role: 'group', 'aria-label': t('range') }, presetButtons, field(t('resolution'), resolutionSelect)),
    custom,
    denial,
    status,
    chartEl,
    gapNote,
    download,
    quality.section,
    h('details', { open: true }, h('summary', {}, t('dataTable')), tableBox),
  );

  /** @type {uPlot | null} */
  let plot = null;
  /** @type {string | null} */
  let url = null;
  let generation = 0;
  const resize = () => plot?.setSize({ width: chartEl.clientWidth || 600, height: 320 });

  /** The gaps within the shown range: counted on the chart and said beneath it. */
  function shadeGaps() {
    const shown = gapRanges(gaps, range.from, range.to);
    chartEl.dataset.gaps = String(shown.length);
    gapNote.hidden = shown.length === 0;
    gapNote.textContent = `${t('gapsShaded')}: ${shown.length}`;
  }

  /**
   * Shades the gaps behind the series (a uPlot hook, before the series are drawn).
   * @param {uPlot} u
   */
  function drawGaps(u) {
    const shown = gapRanges(gaps, range.from, range.to);
    if (!shown.length) return;
    const { ctx, bbox } = u;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
    ctx.clip();
    ctx.fillStyle = 'rgba(224, 108, 0, 0.18)';
    for (const [a, b] of shown) {
      const x0 = u.valToPos(a, 'x', true);
      const x1 = u.valToPos(b, 'x', true);
      ctx.fillRect(x0, bbox.top, Math.max(1, x1 - x0), bbox.height);
    }
    ctx.restore();
  }
  window.addEventListener('resize', resize);

  /** @param {Shown} shown */
  function draw(shown) {
    plot?.destroy();
    plot = null;
    const times = shown.rows.map((r) => Date.parse(r.time) / 1000);
    const unit = unitSuffix(unitName(d.unit));
    /** @type {Pick<uPlot.Options, 'series' | 'bands'>} */
    let opts;
    /** @type {uPlot.AlignedData} */
    let data;
    if (shown.kind === 'raw') {
      data = [times, shown.rows.map((r) => r.value)];
      opts = { series: [{}, { label: `${t('value')}${unit}`, stroke: '#0b4f8a', width: 2, points: { show: shown.rows.length < 200 } }] };
    } else {
      // Personal data has no min/max (each would be one person's reading): the band is left out.
      data = [times, shown.rows.map((r) => r.min ?? null), shown.rows.map((r) => r.max ?? null), shown.rows.map((r) => r.avg)];
      opts = {
        series: [
          {},
          { label: `${t('min')}${unit}`, stroke: '#7aa7d6', width: 1 },
          { label: `${t('max')}${unit}`, stroke: '#7aa7d6', width: 1 },
          { label: `${t('avg')}${unit}`, stroke: '#0b4f8a', width: 2 },
        ],
        bands: [{ series: [2, 1], fill: 'rgba(47,128,201,0.18)' }],
      };
    }
    chartEl.replaceChildren();
    chartEl.dataset.kind = shown.kind;
    chartEl.dataset.points = String(shown.rows.length);
    chartEl.dataset.interval = shown.interval || '';
    if (shown.rows.length) {
      const tick = axisTicks(range.to - range.from);
      /** @type {uPlot.Axis[]} */
      const axes = [
        { values: (_u, splits) => splits.map((v) => new Date(v * 1000).toLocaleString(locale(), tick)) },
        { label: unitName(d.unit) },
      ];
      plot = new uPlot({ width: chartEl.clientWidth || 600, height: 320, scales: { x: { time: true } }, axes, hooks: { drawClear: [drawGaps] }, ...opts }, data, chartEl);
    }
    const head = shown.kind === 'raw' ? [t('time'), t('value')] : [t('time'), t('avg'), t('min'), t('max'), t('count')];
    const rows = shown.kind === 'raw'
      ? shown.rows.map((r) =>
        h('tr', { dataset: { time: r.time, value: r.value } }, [h('td', {}, formatTime(r.time)), h('td', { class: 'num' }, formatNumber(r.value))]),
      )
      : shown.rows.map((r) =>
        h(
          'tr',
          { dataset: { time: r.time, value: r.avg } },
          [h('td', {}, formatTime(r.time)), ...[r.avg, r.min, r.max, r.count].map((v) => h('td', { class: 'num' }, formatNumber(v)))],
        ),
      );
    const caption = `${shown.rows.length} ${t('points')} · ${shown.kind === 'raw' ? t('raw') : `${t('aggregates')} ${shown.interval}`}`;
    tableBox.replaceChildren(table(caption, head, rows, { id: 'points' }));
    if (url) URL.revokeObjectURL(url);
    url = URL.createObjectURL(new Blob([csvOf(shown)], { type: 'text/csv' }));
    download.href = url;
    download.hidden = shown.rows.length === 0;
    status.textContent = shown.rows.length ? caption : t('empty');
    shadeGaps();
  }

  async function show() {
    const mine = ++generation;
    showMessage('');
    denial.hidden = true;
    denial.replaceChildren();
    status.textContent = t('loading');
    const span = range.to - range.from;
    const wantRaw = wantsRaw(resolution, span);
    const deny = (/** @type {ApiProblem} */ e) => {
      denial.hidden = false;
      denial.append(h('p', {}, h('strong', {}, `${t('denied')} (${e.status}): `), h('span', { class: 'reason' }, e.detail)));
    };
    /** @type {Shown | null} */
    let shown = null;
    try {
      if (wantRaw) {
        try {
          shown = { kind: 'raw', rows: await fetchRaw(id, range.from, range.to) };
        } catch (e) {
          if (!(e instanceof ApiProblem) || e.status !== 403 || resolution === 'raw') throw e;
          // Raw readings denied (e.g. a grant of aggregates only): say why, and show what is allowed.
          deny(e);
        }
      }
      if (!shown) {
        const interval = aggregateInterval(resolution, span, wantRaw);
        const page = await fetchAggregates(id, range.from, range.to, interval);
        shown = { kind: 'aggregate', interval, rows: page.buckets };
      }
    } catch (e) {
      if (mine !== generation) return;
      if (e instanceof ApiProblem) deny(e);
      else {
        denial.hidden = false;
        denial.append(h('p', {}, e instanceof Error ? e.message : String(e)));
      }
      shown = wantRaw ? { kind: 'raw', rows: [] } : { kind: 'aggregate', rows: [] };
    }
    if (mine !== generation) return;
    draw(shown);
  }

  await Promise.all([show(), quality.load()]);
  return () => {
    generation++;
    window.removeEventListener('resize', resize);
    plot?.destroy();
    plot = null;
    if (url) URL.revokeObjectURL(url);
  };
}
