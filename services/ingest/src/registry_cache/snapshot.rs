//! An immutable, compact copy of the registry as ingest needs it: per
//! datastream its key, id, unit, owner, dataset and plausible range.
//!
//! Built for 300,000 datastreams in a few tens of bytes each: the rows arrive
//! sorted by organisation, thing and property (byte order), so things and
//! datastreams are kept in plain sorted vectors and found by binary search
//! instead of hash maps keyed by three strings; thing slugs sit back to back
//! in one string, and units, properties and ranges (a handful of distinct
//! values in a town) are stored once and referred to by index. Lookups by id
//! go through one more vector of indices sorted by id.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::num::NonZeroI64;

use hoheit_domain::range::PlausibleRange;
use hoheit_domain::write::WriteTarget;
use hoheit_domain::{DatastreamId, DatastreamKey, Slug, Unit};
use hoheit_store::registry::DatastreamRef;

/// No unit (an index no unit has).
const NO_UNIT: u32 = u32::MAX;

struct Org {
    id: i64,
    slug: Slug,
    /// Its things: `things[first_thing..]` up to the next organisation's first.
    first_thing: u32,
}

struct Thing {
    id: i64,
    org: u32,
    /// Its slug: `slugs[slug_at..slug_at + slug_len]`.
    slug_at: u32,
    slug_len: u8,
    /// Its datastreams: `datastreams[first..]` up to the next thing's first.
    first: u32,
}

struct Entry {
    id: i64,
    dataset: Option<NonZeroI64>,
    thing: u32,
    property: u32,
    unit: u32,
    range: u32,
}

/// The registry at one moment; see the module doc.
pub struct Snapshot {
    orgs: Vec<Org>,
    things: Vec<Thing>,
    slugs: String,
    properties: Vec<Slug>,
    units: Vec<Unit>,
    ranges: Vec<PlausibleRange>,
    datastreams: Vec<Entry>,
    /// Indices into `datastreams`, ordered by datastream id.
    by_id: Vec<u32>,
}

/// Rows that were not in ascending key order (the query's `ORDER BY` and
/// this module disagree about the order: nothing could be found).
#[derive(Debug, thiserror::Error)]
#[error("registry rows out of order at {0} (expected ascending organisation, thing and property in byte order)")]
pub struct OutOfOrder(pub DatastreamKey);

/// Builds a [`Snapshot`] from rows in ascending key order.
pub struct Builder {
    snapshot: Snapshot,
    property_index: HashMap<Slug, u32>,
    unit_index: HashMap<Unit, u32>,
    range_index: HashMap<(Option<u64>, Option<u64>), u32>,
    last: Option<DatastreamKey>,
}

impl Builder {
    /// `capacity`: the number of datastreams expected (a hint).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            snapshot: Snapshot {
                orgs: Vec::new(),
                things: Vec::new(),
                slugs: String::new(),
                properties: Vec::new(),
                units: Vec::new(),
                ranges: Vec::new(),
                datastreams: Vec::with_capacity(capacity),
                by_id: Vec::new(),
            },
            property_index: HashMap::new(),
            unit_index: HashMap::new(),
            range_index: HashMap::new(),
            last: None,
        }
    }

    /// Adds the next datastream; its key must be greater than the previous one's.
    pub fn push(&mut self, key: DatastreamKey, reference: DatastreamRef) -> Result<(), OutOfOrder> {
        let order = self.last.as_ref().map(|last| compare_keys(last, &key));
        if order.is_some_and(|o| o != Ordering::Less) {
            return Err(OutOfOrder(key));
        }
        let s = &mut self.snapshot;
        let same_org = self.last.as_ref().is_some_and(|last| last.org == key.org);
        if !same_org {
            s.orgs.push(Org { id: reference.target.org_id, slug: key.org.clone(), first_thing: s.things.len() as u32 });
        }
        let same_thing = same_org && self.last.as_ref().is_some_and(|last| last.thing == key.thing);
        if !same_thing {
            s.things.push(Thing {
                id: reference.target.thing_id,
                org: (s.orgs.len() - 1) as u32,
                slug_at: s.slugs.len() as u32,
                // A slug has at most `Slug::MAX_LEN` (64) bytes.
                slug_len: key.thing.as_str().len() as u8,
                first: s.datastreams.len() as u32,
            });
            s.slugs.push_str(key.thing.as_str());
        }
        let property = intern(&mut self.property_index, &mut s.properties, &key.property);
        let unit = reference.unit.as_ref().map_or(NO_UNIT, |u| intern(&mut self.unit_index, &mut s.units, u));
        let range_key = (reference.range.min.map(f64::to_bits), reference.range.max.map(f64::to_bits));
        let range = *self.range_index.entry(range_key).or_insert_with(|| {
            s.ranges.push(reference.range);
            (s.ranges.len() - 1) as u32
        });
        s.datastreams.push(Entry {
            id: reference.id.0,
            dataset: reference.target.dataset_id.and_then(NonZeroI64::new),
            thing: (s.things.len() - 1) as u32,
            property,
            unit,
            range,
        });
        self.last = Some(key);
        Ok(())
    }

    pub fn finish(self) -> Snapshot {
        let mut s = self.snapshot;
        let mut by_id: Vec<u32> = (0..s.datastreams.len() as u32).collect();
        by_id.sort_unstable_by_key(|&i| s.datastreams[i as usize].id);
        s.by_id = by_id;
        s.orgs.shrink_to_fit();
        s.things.shrink_to_fit();
        s.slugs.shrink_to_fit();
        s.datastreams.shrink_to_fit();
        s
    }
}

fn intern<T: Clone + Eq + std::hash::Hash>(index: &mut HashMap<T, u32>, values: &mut Vec<T>, value: &T) -> u32 {
    if let Some(&at) = index.get(value) {
        return at;
    }
    values.push(value.clone());
    let at = (values.len() - 1) as u32;
    index.insert(value.clone(), at);
    at
}

fn compare_keys(a: &DatastreamKey, b: &DatastreamKey) -> Ordering {
    (a.org.as_str(), a.thing.as_str(), a.property.as_str()).cmp(&(
        b.org.as_str(),
        b.thing.as_str(),
        b.property.as_str(),
    ))
}

impl Snapshot {
    /// The number of datastreams held.
    pub fn len(&self) -> usize {
        self.datastreams.len()
    }

    /// The datastream of `key`, if it was registered when the snapshot was taken.
    pub fn get(&self, key: &DatastreamKey) -> Option<DatastreamRef> {
        self.find(key).map(|entry| self.reference(entry))
    }

    /// Whether the snapshot holds `key` (without building its reference).
    pub fn contains(&self, key: &DatastreamKey) -> bool {
        self.find(key).is_some()
    }

    fn find(&self, key: &DatastreamKey) -> Option<&Entry> {
        let org = self.orgs.binary_search_by(|o| o.slug.as_str().cmp(key.org.as_str())).ok()?;
        let things = self.span(org, self.orgs.len(), |o| self.orgs[o].first_thing as usize, self.things.len());
        let thing = things.start
            + self.things[things.clone()].binary_search_by(|t| self.slug_of(t).cmp(key.thing.as_str())).ok()?;
        let datastreams =
            self.span(thing, self.things.len(), |t| self.things[t].first as usize, self.datastreams.len());
        let at = datastreams.start
            + self.datastreams[datastreams]
                .binary_search_by(|e| self.properties[e.property as usize].as_str().cmp(key.property.as_str()))
                .ok()?;
        Some(&self.datastreams[at])
    }

    /// The key and reference of datastream `id`, if it was registered when the snapshot was taken.
    pub fn by_id(&self, id: DatastreamId) -> Option<(DatastreamKey, DatastreamRef)> {
        let at = self.by_id.binary_search_by_key(&id.0, |&i| self.datastreams[i as usize].id).ok()?;
        let entry = &self.datastreams[self.by_id[at] as usize];
        let thing = &self.things[entry.thing as usize];
        let key = DatastreamKey {
            org: self.orgs[thing.org as usize].slug.clone(),
            thing: Slug::parse("thing", self.slug_of(thing)).ok()?,
            property: self.properties[entry.property as usize].clone(),
        };
        Some((key, self.reference(entry)))
    }

    /// The range of element `i`'s children: from its first to the next element's first.
    fn span(&self, i: usize, len: usize, first: impl Fn(usize) -> usize, total: usize) -> std::ops::Range<usize> {
        let end = if i + 1 < len { first(i + 1) } else { total };
        first(i)..end
    }

    fn slug_of(&self, thing: &Thing) -> &str {
        let at = thing.slug_at as usize;
        &self.slugs[at..at + thing.slug_len as usize]
    }

    fn reference(&self, entry: &Entry) -> DatastreamRef {
        let thing = &self.things[entry.thing as usize];
        DatastreamRef {
            id: DatastreamId(entry.id),
            unit: self.units.get(entry.unit as usize).cloned(),
            target: WriteTarget {
                org_id: self.orgs[thing.org as usize].id,
                dataset_id: entry.dataset.map(NonZeroI64::get),
                thing_id: thing.id,
            },
            range: self.ranges[entry.range as usize],
        }
    }

    /// The bytes the snapshot holds on the heap (an estimate for the metric and the benchmark).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.orgs.capacity() * size_of::<Org>()
            + self.things.capacity() * size_of::<Thing>()
            + self.slugs.capacity()
            + self.properties.iter().map(|p| size_of::<Slug>() + p.as_str().len()).sum::<usize>()
            + self.datastreams.capacity() * size_of::<Entry>()
            + self.by_id.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(org: &str, thing: &str, property: &str) -> DatastreamKey {
        DatastreamKey {
            org: Slug::parse("organisation", org).unwrap(),
            thing: Slug::parse("thing", thing).unwrap(),
            property: Slug::parse("property", property).unwrap(),
        }
    }

    fn reference(id: i64, org_id: i64, thing_id: i64) -> DatastreamRef {
        DatastreamRef {
            id: DatastreamId(id),
            unit: (id % 2 == 0).then(|| Unit::parse("Cel").unwrap()),
            target: WriteTarget { org_id, dataset_id: (id % 3 == 0).then_some(id * 10), thing_id },
            range: PlausibleRange::new(Some(-40.0), (id % 5 == 0).then_some(85.0)).unwrap(),
        }
    }

    /// Keys in byte order, with ids deliberately not in key order.
    fn rows() -> Vec<(DatastreamKey, DatastreamRef)> {
        let keys = [
            ("a", "t-1", "p"),
            ("a", "t-1", "p-x"),
            ("a", "t-1", "p_x"),
            ("a", "t1", "p"),
            ("a", "t_1", "px"),
            ("b", "t-1", "p"),
            ("b", "zz", "a"),
            ("b", "zz", "b"),
            ("c-d", "x", "y"),
        ];
        keys.iter()
            .enumerate()
            .map(|(i, (org, thing, property))| {
                let org_id = org.len() as i64 * 100 + org.as_bytes()[0] as i64;
                let thing_id = org_id * 1000 + thing.as_bytes().iter().map(|b| *b as i64).sum::<i64>();
                (key(org, thing, property), reference(((i * 7) % 11 + 1) as i64, org_id, thing_id))
            })
            .collect()
    }

    fn build(rows: &[(DatastreamKey, DatastreamRef)]) -> Snapshot {
        let mut builder = Builder::with_capacity(rows.len());
        for (key, reference) in rows {
            builder.push(key.clone(), reference.clone()).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn every_datastream_is_found_by_key_and_by_id_with_its_reference() {
        let rows = rows();
        let snapshot = build(&rows);
        assert_eq!(snapshot.len(), rows.len());
        for (key, reference) in &rows {
            assert_eq!(snapshot.get(key).as_ref(), Some(reference), "{key}");
            assert!(snapshot.contains(key), "{key}");
            assert_eq!(snapshot.by_id(reference.id), Some((key.clone(), reference.clone())), "{key}");
        }
    }

    #[test]
    fn keys_and_ids_that_were_not_registered_are_not_found() {
        let snapshot = build(&rows());
        for (org, thing, property) in
            [("a", "t-1", "q"), ("a", "t2", "p"), ("b", "t1", "p"), ("c", "x", "y"), ("c-d", "x", "z"), ("0", "t", "p")]
        {
            assert_eq!(snapshot.get(&key(org, thing, property)), None, "{org}/{thing}/{property}");
            assert!(!snapshot.contains(&key(org, thing, property)), "{org}/{thing}/{property}");
        }
        assert_eq!(snapshot.by_id(DatastreamId(12)), None);
        assert_eq!(snapshot.by_id(DatastreamId(0)), None);
        let empty = Builder::with_capacity(0).finish();
        assert_eq!(empty.get(&key("a", "t-1", "p")), None);
        assert_eq!(empty.by_id(DatastreamId(1)), None);
    }

    #[test]
    fn rows_out_of_order_or_repeated_are_refused() {
        let rows = rows();
        let mut builder = Builder::with_capacity(2);
        builder.push(rows[1].0.clone(), rows[1].1.clone()).unwrap();
        assert!(builder.push(rows[0].0.clone(), rows[0].1.clone()).is_err());
        assert!(builder.push(rows[1].0.clone(), rows[1].1.clone()).is_err());
    }

    #[test]
    fn a_datastream_takes_a_few_dozen_bytes() {
        let mut builder = Builder::with_capacity(30_000);
        for t in 0..10_000 {
            for p in 0..3 {
                let id = t * 3 + p + 1;
                let thing = format!("sensor-{t:06}");
                builder.push(key("stadt", &thing, &format!("p{p}")), reference(id, 1, t + 1)).unwrap();
            }
        }
        let snapshot = builder.finish();
        let per_datastream = snapshot.heap_bytes() / snapshot.len();
        assert!(per_datastream <= 64, "{per_datastream} bytes per datastream");
    }
}
