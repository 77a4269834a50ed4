// @ts-check
// The map of things and the list of datastreams, with search and filters by
// theme, organisation and classification, and each datastream's quality
// badge (qualityview.js); both follow the live values.

import L from 'leaflet';
import { h, field } from './dom.js';
import { formatTime, formatValue, t, theme as themeName } from './i18n.js';
import { orgLabel } from './labels.js';
import { loadBadges, qualityBadge, worstBadge } from './qualityview.js';

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
    if (!needle) return true;
    return [d.name, d.thing, d.thing_name, d.property, d.org, orgLabel(state.orgs, d.org), ds?.title].some((s) => s && s.toLowerCase().includes(needle));
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
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  const fill = () => {
    const rows = filtered(state).sort((a, b) => a.id - b.id);
    count.textContent = `${rows.length} ${t('datastreams')} ${t('shown')}`;
    body.replaceChildren(
      ...rows.map((d) => {
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
      }),
    );
    loadBadges(state, rows, () => alive && fill());
  };
  const head = [t('name'), t('thing'), t('dataset'), t('theme'), t('organisation'), t('classification'), t('latest'), t('time'), t('quality')];
  main.append(
    h('h2', {}, t('list')),
    filterBar(state, fill),
    count,
    h(
      'div',
      { class: 'scroll' },
      h('table', { id: 'streams' }, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), body),
    ),
  );
  let alive = true;
  fill();
  const off = onLive(fill);
  return () => {
    alive = false;
    off();
  };
}

/** @param {View} view */
export function renderMap({ state, main, onLive }) {
  const mapEl = h('div', { id: 'map', class: 'map', role: 'region', 'aria-label': t('map') });
  const notice = h('p', { class: 'notice', hidden: true }, t('tilesFailed'));
  const tiles = h('input', { type: 'url', id: 'tile-url', value: tileUrl() });
  const legend = h('ul', { class: 'things', 'aria-label': t('datastreams') });
  main.append(
    h('h2', {}, t('map')),
    filterBar(state, () => draw()),
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
  let fitted = false;
  let alive = true;

  function draw() {
    markers.clearLayers();
    /** @type {Map<string, { name: string, lat: number | null | undefined, lon: number | null | undefined, streams: LiveDatastream[] }>} */
    const things = new Map();
    for (const d of filtered(state)) {
      const key = `${d.org}/${d.thing}`;
      let thing = things.get(key);
      if (!thing) {
        thing = { name: d.thing_name || d.thing, lat: d.latitude, lon: d.longitude, streams: [] };
        things.set(key, thing);
      }
      thing.streams.push(d);
    }
    /** @type {[number, number][]} */
    const points = [];
    const items = [];
    for (const [key, thing] of things) {
      const lines = thing.streams.map((d) =>
        h('li', {}, h('a', { href: `#/datastream/${d.id}` }, d.name), ': ', h('span', { class: 'latest', dataset: { id: d.id } }, latestText(d)), ' ', qualityBadge(state, d.id)),
      );
      items.push(
        h('li', { dataset: { thing: key } }, h('strong', {}, thing.name), thing.lat == null ? ` (${t('noPosition')})` : '', h('ul', {}, lines)),
      );
      if (thing.lat == null || thing.lon == null) continue;
      const popup = h('div', {}, h('strong', {}, thing.name), h('ul', {}, thing.streams.map((d) =>
        h('li', {}, h('a', { href: `#/datastream/${d.id}` }, d.name), `: ${latestText(d)} `, qualityBadge(state, d.id)),
      )));
      // The marker's colour repeats the worst badge (the legend and the popup say it in words).
      const worst = worstBadge(state, thing.streams.map((d) => d.id));
      const fillColor = worst === 'silent' ? '#6b6b6b' : worst === 'degraded' ? '#e08a00' : '#2f80c9';
      L.circleMarker([thing.lat, thing.lon], { radius: 9, color: '#0b4f8a', weight: 2, fillColor, fillOpacity: 0.85 })
        .bindPopup(popup)
        .bindTooltip(thing.name)
        .addTo(markers);
      points.push([thing.lat, thing.lon]);
    }
    legend.replaceChildren(...items);
    mapEl.dataset.markers = String(points.length);
    loadBadges(state, [...things.values()].flatMap((x) => x.streams), () => alive && draw());
    if (!fitted && points.length) {
      map.fitBounds(L.latLngBounds(points).pad(0.3), { maxZoom: 15, animate: false });
      fitted = true;
    }
  }
  draw();
  const off = onLive(draw);
  return () => {
    alive = false;
    off();
    // Leaving during a pan or zoom animation must not leave it running on a removed map.
    map.stop();
    map.off();
    map.remove();
  };
}
