// @ts-check
// The map's things and their clusters: datastreams grouped by their thing,
// and the things with a position indexed by supercluster, which answers the
// clusters of any view in a few milliseconds however many things a town has
// (a marker object per thing, as Leaflet's own clustering plugin keeps, does
// not stay quick at a hundred thousand). No DOM, so test/clusters.test.js
// checks it in node.

import Supercluster from 'supercluster';

/**
 * A thing on the map: its datastreams that pass the filters.
 * @template {{ org: string, thing: string, thing_name?: string | null, latitude?: number | null, longitude?: number | null }} D
 * @typedef {{ key: string, name: string, lat: number | null, lon: number | null, streams: D[] }} Thing
 */

/**
 * What a view of the map shows: a cluster of things (`count` of them; `id` to ask how
 * far to zoom in) or one thing.
 * @template T
 * @typedef {{ kind: 'cluster', lat: number, lon: number, count: number, id: number } | { kind: 'thing', lat: number, lon: number, thing: T }} Shown
 */

/**
 * The datastreams grouped by their thing (`org/thing`), in the order they come.
 * @template {{ org: string, thing: string, thing_name?: string | null, latitude?: number | null, longitude?: number | null }} D
 * @param {Iterable<D>} streams
 * @returns {Map<string, Thing<D>>}
 */
export function thingsOf(streams) {
  /** @type {Map<string, Thing<D>>} */
  const things = new Map();
  for (const d of streams) {
    const key = `${d.org}/${d.thing}`;
    let thing = things.get(key);
    if (!thing) {
      thing = { key, name: d.thing_name || d.thing, lat: d.latitude ?? null, lon: d.longitude ?? null, streams: [] };
      things.set(key, thing);
    }
    thing.streams.push(d);
  }
  return things;
}

/** Above this zoom every thing is shown on its own. */
export const CLUSTER_MAX_ZOOM = 16;

/**
 * The things with a position, clustered for every zoom level.
 * @template {Thing<any>} T
 * @param {T[]} things
 */
export function clusterIndex(things) {
  const placed = things.filter((x) => x.lat != null && x.lon != null);
  /** @type {Supercluster<{ i: number }>} */
  const index = new Supercluster({ radius: 60, maxZoom: CLUSTER_MAX_ZOOM, minPoints: 2 });
  index.load(placed.map((x, i) => ({ type: 'Feature', properties: { i }, geometry: { type: 'Point', coordinates: [Number(x.lon), Number(x.lat)] } })));
  return {
    /** How many things have a position. */
    size: placed.length,
    /**
     * The clusters and single things within a view.
     * @param {[number, number, number, number]} bbox west, south, east, north
     * @param {number} zoom
     * @returns {Shown<T>[]}
     */
    at(bbox, zoom) {
      return index.getClusters(bbox, Math.round(zoom)).map((f) => {
        const [lon, lat] = f.geometry.coordinates;
        const p = /** @type {any} */ (f.properties);
        return p.cluster
          ? { kind: 'cluster', lat, lon, count: p.point_count, id: p.cluster_id }
          : { kind: 'thing', lat, lon, thing: placed[p.i] };
      });
    },
    /**
     * The zoom at which cluster `id` falls apart.
     * @param {number} id
     */
    expansionZoom(id) {
      return index.getClusterExpansionZoom(id);
    },
  };
}
