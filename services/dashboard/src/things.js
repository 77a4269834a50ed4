// @ts-check
// The map of things and the list of datastreams, with search and filters by
// theme, organisation and classification, and each datastream's quality
// badge (qualityview.js); both follow the live values. Built for a town's
// whole registry (hundreds of thousands of datastreams): the list shows a
// page at a time, the map clusters its things (clusters.js) and lists those
// in view, and a live update redraws what is shown, not the whole registry.

import L from 'leaflet';
import { h, field } from './dom.js';
import { formatTime, formatValue, t, theme as themeName } from './i18n.js';
import { orgLabel } from './labels.js';
import { loadBadges, qualityBadge, worstBadge } from './qualityview.js';
import { clusterIndex, thingsOf } from './clusters.js';
import { pageOf } from './paging.js';

/** @typedef {import('./main.js').State} State */
/** @typedef {import('./main.js').View} View */
/** @typedef {import('./main.js').LiveDatastream} LiveDatastream */

const DEFAULT_TILES = import.meta.env.VITE_TILE_URL || 'https://tile.openstreetmap.org/{z}/{x}/{y}.png';
// The tile URL is a display preference, not a secret: it may stay in localStorage.
const TILE_KEY = 'hoheit.tiles';

function tileUrl() {
  try {
    return localStorage.getItem(TILE_KEY) || DEFAULT_TILES;
  } catch {
    return DEFAULT_TILES;
  }
}

/**
 * @param {State} state
 * @param {LiveDatastream} d
 */
function datasetOf(state, d) {
  return d.dataset_id ? state.datasets.get(d.dataset_id) : undefined;
}

/** @param {LiveDatastream} d */
function latestText(d) {
  if (d.latest_value === null || d.latest_value === undefined) return d.raw ? t('none') : t('noAccessRaw');
  return formatValue(d.latest_value, d.unit);
}

/**
 * What the search looks in, lower-cased, kept per datastream object (a snapshot
 * brings new objects, so nothing stale is kept): a keystroke then costs one
 * `includes` per datastream, which stays quick at hundreds of thousands.
 * @type {WeakMap<LiveDatastream, string>}
 */
const searchText = new WeakMap();

/**
 * @param {State} state
 * @param {LiveDatastream} d
 */
function searchable(state, d) {
  let text = searchText.get(d);
  if (text === undefined) {
    const ds = datasetOf(state, d);
    text = [d.name, d.thing, d.thing_name, d.property, d.org, orgLabel(state.orgs, d.org), ds?.title]
      .filter((s) => s)
      .join('\n')
      .toLowerCase();
    searchText.set(d, text);
  }
  return text;
}

/**
 * The datastreams that pass the filters.
 * @param {State} state
 */
function filtered(state) {
  const f = state.filters;
  const needle = f.search.trim().toLowerCase();
  return [...state.streams.values()].filter((d) => {
    const ds = datasetOf(state, d);
    if (f.theme && ds?.theme !== f.theme) return false;
    if (f.org && (ds?.owner || d.org) !== f.org) return false;
    if (f.classification && (ds?.classification || 'internal') !== f.classification) return false;
    return !needle || searchable(state, d).includes(needle);
  });
}

/**
 * The options of a filter: its values shown by their labels, in the labels' order.
 * @param {Set<string>} values
 * @param {string} selected
 * @param {(value: string) => string} label
 */
function options(values, selected, label) {
  const sorted = [...values].map((v) => ({ v, text: label(v) })).sort((a, b) => a.text.localeCompare(b.text));
  return [
    h('option', { value: '' }, t('all')),
    ...sorted.map(({ v, text }) => h('option', { value: v, selected: v === selected }, text)),
  ];
}

/**
 * Search and filter controls; calls onChange after each change.
 * @param {State} state
 * @param {() => void} onChange
 */
function filterBar(state, onChange) {
  const streams = [...state.streams.values()];
  /** @type {Set<string>} */
  const themes = new Set();
  /** @type {Set<string>} */
  const orgs = new Set();
  /** @type {Set<string>} */
  const classes = new Set();
  for (const d of streams) {
    const ds = datasetOf(state, d);
    if (ds?.theme) themes.add(ds.theme);
    orgs.add(ds?.owner || d.org);
    classes.add(ds?.classification || 'internal');
  }
  const search = h('input', { type: 'search', id: 'filter-search', value: state.filters.search });
  const theme = h('select', { id: 'filter-theme' }, options(themes, state.filters.theme, themeName));
  const org = h('select', { id: 'filter-org' }, options(orgs, state.filters.org, (o) => orgLabel(state.orgs, o)));
  const cls = h('select', { id: 'filter-classification' }, options(classes, state.filters.classification, (c) => c));
  const update = () => {
    Object.assign(state.filters, { search: search.value, theme: theme.value, org: org.value, classification: cls.value });
    onChange();
  };
  search.addEventListener('input', update);
  for (const s of [theme, org, cls]) s.addEventListener('change', update);
  return h(
    'form',
    { class: 'filters', role: 'search', onsubmit: (/** @type {SubmitEvent} */ e) => e.preventDefault() },
    field(t('search'), search),
    field(t('theme'), theme),
    field(t('organisation'), org),
    field(t('classification'), cls),
  );
}

/** @param {View} view */
export function renderList({ state, main, onLive }) {
  const body = h('tbody');
  const count = h('p', { class: 'count', id: 'list-count', 'aria-live': 'polite' });
  const previous = h('button', { type: 'button', id: 'list-previous' }, t('pagePrevious'));
  const next = h('button', { type: 'button', id: 'list-next' }, t('pageNext'));
  const position = h('span', { id: 'list-page' });
  /** @type {LiveDatastream[]} the datastreams that pass the filters, by id */
  let rows = [];
  let page = 0;
  let alive = true;
  /** @param {boolean} [keepPage] a new snapshot keeps the page, a new filter starts at the first */
  const select = (keepPage = false) => {
    rows = filtered(state).sort((a, b) => a.id - b.id);
    if (!keepPage) page = 0;
    show();
  };
  const show = () => {
    const shown = pageOf(rows, page);
    page = shown.page;
    count.textContent = `${rows.length} ${t('datastreams')}, ${shown.first}–${shown.last} ${t('shown')}`;
    position.textContent = `${t('page')} ${shown.page + 1} ${t('pageOf')} ${shown.pages}`;
    // aria-disabled, not disabled: the button keeps the keyboard focus at the last page.
    previous.setAttribute('aria-disabled', String(shown.page === 0));
    next.setAttribute('aria-disabled', String(shown.page >= shown.pages - 1));
    body.replaceChildren(...shown.rows.map((d) => row(state, d)));
    loadBadges(state, shown.rows, () => alive && show());
  };
  /** @param {number} step */
  const turn = (step) => {
    const to = pageOf(rows, page + step).page;
    if (to === page) return;
    page = to;
    show();
  };
  previous.addEventListener('click', () => turn(-1));
  next.addEventListener('click', () => turn(1));
  const head = [t('name'), t('thing'), t('dataset'), t('theme'), t('organisation'), t('classification'), t('latest'), t('time'), t('quality')];
  main.append(
    h('h2', {}, t('list')),
    filterBar(state, () => select()),
    count,
    h('nav', { class: 'pager', 'aria-label': t('pages') }, previous, position, next),
    h(
      'div',
      { class: 'scroll' },
      h('table', { id: 'streams' }, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), body),
    ),
  );
  select();
  const off = onLive((update) => (update.snapshot ? select(true) : show()));
  return () => {
    alive = false;
    off();
  };
}

/**
 * A datastream's row of the list.
 * @param {State} state
 * @param {LiveDatastream} d
 */
function row(state, d) {
  const ds = datasetOf(state, d);
  return h(
    'tr',
    { dataset: { id: d.id } },
    h('td', {}, h('a', { href: `#/datastream/${d.id}` }, d.name)),
    h('td', {}, d.thing_name || d.thing),
    h('td', {}, ds?.title || t('none')),
    h('td', { class: 'theme' }, ds?.theme ? themeName(ds.theme) : t('none')),
    h('td', { class: 'org' }, orgLabel(state.orgs, ds?.owner || d.org)),
    h('td', {}, h('span', { class: `badge ${ds?.classification || 'internal'}` }, ds?.classification || 'internal')),
    h('td', { class: 'num latest', dataset: { value: d.latest_value ?? '' } }, latestText(d)),
    h('td', {}, formatTime(d.latest_time)),
    h('td', { class: 'quality' }, qualityBadge(state, d.id)),
  );
}

/** Things the map's list beside it names at most: those in view, then those without a position. */
const LEGEND_MAX = 50;

/**
 * A thing's datastreams as list items: name (linked), latest value, quality badge.
 * @param {State} state
 * @param {import('./clusters.js').Thing<LiveDatastream>} thing
 */
function thingLines(state, thing) {
  return thing.streams.map((d) =>
    h('li', {}, h('a', { href: `#/datastream/${d.id}` }, d.name), ': ', h('span', { class: 'latest', dataset: { id: d.id } }, latestText(d)), ' ', qualityBadge(state, d.id)),
  );
}

/** @param {View} view */
export function renderMap({ state, main, onLive }) {
  const mapEl = h('div', { id: 'map', class: 'map', role: 'region', 'aria-label': t('map') });
  const notice = h('p', { class: 'notice', hidden: true }, t('tilesFailed'));
  const tiles = h('input', { type: 'url', id: 'tile-url', value: tileUrl() });
  const legend = h('ul', { class: 'things', 'aria-label': t('datastreams') });
  main.append(
    h('h2', {}, t('map')),
    filterBar(state, () => select()),
    notice,
    h('div', { class: 'map-layout' }, mapEl, legend),
    h(
      'details',
      { class: 'settings' },
      h('summary', {}, t('tiles')),
      h(
        'form',
        {
          onsubmit: (/** @type {SubmitEvent} */ e) => {
            e.preventDefault();
            try {
              localStorage.setItem(TILE_KEY, tiles.value.trim());
            } catch {
              /* private mode */
            }
            layer.setUrl(tiles.value.trim() || DEFAULT_TILES);
          },
        },
        field(t('tiles'), tiles),
        h('button', { type: 'submit' }, t('show')),
      ),
    ),
  );
  const map = L.map(mapEl, { zoomControl: true, keyboard: true, zoomAnimation: false, fadeAnimation: false }).setView([52.83, 13.82], 12);
  const layer = L.tileLayer(tileUrl(), {
    maxZoom: 19,
    attribution: '&copy; OpenStreetMap contributors',
  }).addTo(map);
  let failures = 0;
  layer.on('tileerror', () => {
    failures += 1;
    notice.hidden = false;
  });
  layer.on('tileload', () => {
    if (failures === 0) notice.hidden = true;
  });
  const markers = L.layerGroup().addTo(map);
  /** @type {import('./clusters.js').Thing<LiveDatastream>[]} */
  let things = [];
  let index = clusterIndex(things);
  let fitted = false;
  let alive = true;

  /** Groups and clusters the things that pass the filters (on a new filter or snapshot). */
  function select() {
    things = [...thingsOf(filtered(state)).values()];
    index = clusterIndex(things);
    mapEl.dataset.markers = String(index.size);
    if (!fitted && index.size) {
      /** @type {[number, number][]} */
      const points = things.filter((x) => x.lat != null && x.lon != null).map((x) => [Number(x.lat), Number(x.lon)]);
      map.fitBounds(L.latLngBounds(points).pad(0.3), { maxZoom: 15, animate: false });
      fitted = true;
    }
    draw();
  }

  /** The clusters and things in view as markers, then the list beside the map. */
  function draw() {
    markers.clearLayers();
    const b = map.getBounds();
    const shown = index.at([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], map.getZoom());
    let clusters = 0;
    for (const s of shown) {
      if (s.kind === 'cluster') {
        clusters += 1;
        const radius = Math.min(28, 12 + 5 * Math.log10(s.count));
        L.circleMarker([s.lat, s.lon], { radius, color: '#0b4f8a', weight: 2, fillColor: '#5b9fd6', fillOpacity: 0.8, className: 'cluster' })
          .bindTooltip(String(s.count), { permanent: true, direction: 'center', className: 'cluster-count' })
          .on('click', () => map.setView([s.lat, s.lon], Math.min(index.expansionZoom(s.id), 19), { animate: false }))
          .addTo(markers);
        continue;
      }
      const thing = s.thing;
      // The popup is made when opened: it shows the values of that moment.
      const popup = () => h('div', {}, h('strong', {}, thing.name), h('ul', {}, thingLines(state, thing)));
      // The marker's colour repeats the worst badge (the legend and the popup say it in words).
      const worst = worstBadge(state, thing.streams.map((d) => d.id));
      const fillColor = worst === 'silent' ? '#6b6b6b' : worst === 'degraded' ? '#e08a00' : '#2f80c9';
      L.circleMarker([s.lat, s.lon], { radius: 9, color: '#0b4f8a', weight: 2, fillColor, fillOpacity: 0.85 })
        .bindPopup(popup)
        .bindTooltip(thing.name)
        .addTo(markers);
    }
    mapEl.dataset.drawn = String(shown.length);
    mapEl.dataset.clusters = String(clusters);
    mapEl.dataset.zoom = String(map.getZoom());
    drawLegend();
  }

  /** The things in view (and those without a position) beside the map, at most LEGEND_MAX. */
  function drawLegend() {
    const b = map.getBounds();
    const inView = things.filter((x) => x.lat == null || x.lon == null || b.contains([x.lat, x.lon]));
    const listed = inView.slice(0, LEGEND_MAX);
    const items = listed.map((thing) =>
      h('li', { dataset: { thing: thing.key } }, h('strong', {}, thing.name), thing.lat == null ? ` (${t('noPosition')})` : '', h('ul', {}, thingLines(state, thing))),
    );
    if (inView.length > listed.length) items.push(h('li', { class: 'more' }, `${inView.length - listed.length} ${t('moreInView')}`));
    legend.replaceChildren(...items);
    loadBadges(state, listed.flatMap((x) => x.streams), () => alive && draw());
  }

  map.on('moveend', () => alive && draw());
  select();
  // A live value changes what the list beside the map says; the markers stay (an open popup too).
  const off = onLive((update) => (update.snapshot ? select() : drawLegend()));
  return () => {
    alive = false;
    off();
    // Leaving during a pan or zoom animation must not leave it running on a removed map.
    map.stop();
    map.off();
    map.remove();
  };
}
