//! How Hoheit's registry and observations appear as SensorThings entities.
//!
//! | SensorThings | Hoheit | `@iot.id` |
//! | --- | --- | --- |
//! | Thing | a thing | thing id |
//! | Location, HistoricalLocation, FeatureOfInterest | a thing's position (things with coordinates only) | thing id |
//! | Sensor | the device at a thing, measuring all its datastreams | thing id |
//! | ObservedProperty | a property name (`temperature`) across things | lowest datastream id with that property |
//! | Datastream | a datastream | datastream id |
//! | Observation | a stored reading | `'{datastream}-{microseconds since 1970}'` |
//!
//! Each entity type is a SQL subquery (`base`) over the tables, limited to
//! what the caller may see: the datastream ids of the caller's view are bound
//! as an array. Filters, ordering and navigation work on its columns.

/// The SQL type of a property, for checking filters and binding literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Number,
    Text,
    Time,
    Bool,
    /// A point (longitude, latitude), as the geometric `point` of PostgreSQL.
    Point,
    /// A JSON object; its members are text (`properties/organisation`).
    Object,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    Things,
    Locations,
    HistoricalLocations,
    Datastreams,
    Sensors,
    ObservedProperties,
    Observations,
    FeaturesOfInterest,
}

pub const ALL: [Entity; 8] = [
    Entity::Things,
    Entity::Locations,
    Entity::HistoricalLocations,
    Entity::Datastreams,
    Entity::Sensors,
    Entity::ObservedProperties,
    Entity::Observations,
    Entity::FeaturesOfInterest,
];

/// Which rows of a base query a caller sees: the datastreams whose metadata
/// it may see, and (for observations) those it may read raw.
pub enum Scope {
    /// A predicate over the datastreams (`sql::push_base`).
    Datastreams,
    ReadableDatastreams,
}

/// One navigation property: from an entity of one type to related ones.
#[derive(Debug, Clone, Copy)]
pub struct Navigation {
    pub name: &'static str,
    pub target: Entity,
    /// Column of the source entity whose value finds the targets …
    pub source_column: &'static str,
    /// … in this column of the target.
    pub target_column: &'static str,
    /// A single entity (`Datastream/Thing`) rather than a collection.
    pub single: bool,
}

const fn nav(
    name: &'static str,
    target: Entity,
    source_column: &'static str,
    target_column: &'static str,
    single: bool,
) -> Navigation {
    Navigation { name, target, source_column, target_column, single }
}

impl Entity {
    pub fn plural(self) -> &'static str {
        match self {
            Entity::Things => "Things",
            Entity::Locations => "Locations",
            Entity::HistoricalLocations => "HistoricalLocations",
            Entity::Datastreams => "Datastreams",
            Entity::Sensors => "Sensors",
            Entity::ObservedProperties => "ObservedProperties",
            Entity::Observations => "Observations",
            Entity::FeaturesOfInterest => "FeaturesOfInterest",
        }
    }

    /// The entity type's name, as a single navigation to it is named (`Thing`).
    pub fn singular(self) -> &'static str {
        match self {
            Entity::Things => "Thing",
            Entity::Locations => "Location",
            Entity::HistoricalLocations => "HistoricalLocation",
            Entity::Datastreams => "Datastream",
            Entity::Sensors => "Sensor",
            Entity::ObservedProperties => "ObservedProperty",
            Entity::Observations => "Observation",
            Entity::FeaturesOfInterest => "FeatureOfInterest",
        }
    }

    pub fn from_plural(name: &str) -> Option<Self> {
        ALL.into_iter().find(|e| e.plural() == name)
    }

    /// Whether `@iot.id` is text (observations) rather than a number.
    pub fn text_id(self) -> bool {
        self == Entity::Observations
    }

    /// The subquery of this entity type, which datastreams limit it, and the
    /// alias of the datastreams the `{scope}` predicate (the caller's view) is over.
    pub fn base(self) -> (&'static str, Scope, &'static str) {
        match self {
            Entity::Things => (
                "SELECT t.id, t.name, t.name || ', ' || o.name AS description,
                        json_build_object('organisation', o.slug, 'thing', t.slug) AS properties
                 FROM things t JOIN organisations o ON o.id = t.org_id
                 WHERE EXISTS (SELECT 1 FROM datastreams vd WHERE vd.thing_id = t.id AND {scope})",
                Scope::Datastreams, "vd",
            ),
            Entity::Locations | Entity::FeaturesOfInterest => (
                "SELECT t.id, t.name, 'Position of ' || t.name AS description, 'application/geo+json' AS \"encodingType\",
                        point(t.longitude, t.latitude) AS geo, t.id AS thing_id
                 FROM things t
                 WHERE t.latitude IS NOT NULL AND t.longitude IS NOT NULL
                   AND EXISTS (SELECT 1 FROM datastreams vd WHERE vd.thing_id = t.id AND {scope})",
                Scope::Datastreams, "vd",
            ),
            Entity::HistoricalLocations => (
                "SELECT t.id, t.created_at AS time, t.id AS thing_id
                 FROM things t
                 WHERE t.latitude IS NOT NULL AND t.longitude IS NOT NULL
                   AND EXISTS (SELECT 1 FROM datastreams vd WHERE vd.thing_id = t.id AND {scope})",
                Scope::Datastreams, "vd",
            ),
            Entity::Sensors => (
                "SELECT t.id, t.name || ' (device)' AS name,
                        'The measuring device at ' || t.name || ', registered by ' || o.name AS description,
                        'text/plain' AS \"encodingType\", 'hoheit:' || o.slug || '/' || t.slug AS metadata
                 FROM things t JOIN organisations o ON o.id = t.org_id
                 WHERE EXISTS (SELECT 1 FROM datastreams vd WHERE vd.thing_id = t.id AND {scope})",
                Scope::Datastreams, "vd",
            ),
            Entity::ObservedProperties => (
                "SELECT min(d.id) AS id, d.property AS name, 'urn:hoheit:property:' || d.property AS definition,
                        'The property ' || d.property || ' as registered in Hoheit' AS description
                 FROM datastreams d GROUP BY d.property HAVING bool_or({scope})",
                Scope::Datastreams, "d",
            ),
            Entity::Datastreams => (
                "SELECT d.id, d.name, d.name || ' at ' || t.name AS description,
                        coalesce(d.unit, '') AS unit_symbol,
                        'http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement' AS \"observationType\",
                        CASE WHEN ds.id IS NULL
                            THEN json_build_object('organisation', o.slug, 'thing', t.slug, 'property', d.property)
                            ELSE json_build_object('organisation', o.slug, 'thing', t.slug, 'property', d.property,
                                'dataset', ds.slug, 'classification', ds.classification, 'license', ds.license)
                        END AS properties,
                        d.thing_id, (SELECT min(p.id) FROM datastreams p WHERE p.property = d.property) AS property_id
                 FROM datastreams d JOIN things t ON t.id = d.thing_id JOIN organisations o ON o.id = t.org_id
                 LEFT JOIN datasets ds ON ds.id = d.dataset_id
                 WHERE {scope}",
                Scope::Datastreams, "d",
            ),
            Entity::Observations => (
                "SELECT ob.datastream_id, ob.time, ob.value, od.thing_id
                 FROM observations ob JOIN datastreams od ON od.id = ob.datastream_id
                 WHERE {scope}",
                Scope::ReadableDatastreams, "od",
            ),
        }
    }

    /// The filterable and selectable properties: name, SQL over the base's alias `e`, type.
    pub fn properties(self) -> &'static [(&'static str, &'static str, Ty)] {
        match self {
            Entity::Things => &[
                ("id", "e.id", Ty::Number),
                ("name", "e.name", Ty::Text),
                ("description", "e.description", Ty::Text),
                ("properties", "e.properties", Ty::Object),
            ],
            Entity::Locations => &[
                ("id", "e.id", Ty::Number),
                ("name", "e.name", Ty::Text),
                ("description", "e.description", Ty::Text),
                ("encodingType", "e.\"encodingType\"", Ty::Text),
                ("location", "e.geo", Ty::Point),
            ],
            Entity::FeaturesOfInterest => &[
                ("id", "e.id", Ty::Number),
                ("name", "e.name", Ty::Text),
                ("description", "e.description", Ty::Text),
                ("encodingType", "e.\"encodingType\"", Ty::Text),
                ("feature", "e.geo", Ty::Point),
            ],
            Entity::HistoricalLocations => &[("id", "e.id", Ty::Number), ("time", "e.time", Ty::Time)],
            Entity::Sensors => &[
                ("id", "e.id", Ty::Number),
                ("name", "e.name", Ty::Text),
                ("description", "e.description", Ty::Text),
                ("encodingType", "e.\"encodingType\"", Ty::Text),
                ("metadata", "e.metadata", Ty::Text),
            ],
            Entity::ObservedProperties => &[
                ("id", "e.id", Ty::Number),
                ("name", "e.name", Ty::Text),
                ("definition", "e.definition", Ty::Text),
                ("description", "e.description", Ty::Text),
            ],
            Entity::Datastreams => &[
                ("id", "e.id", Ty::Number),
                ("name", "e.name", Ty::Text),
                ("description", "e.description", Ty::Text),
                ("unitOfMeasurement/name", "e.unit_symbol", Ty::Text),
                ("unitOfMeasurement/symbol", "e.unit_symbol", Ty::Text),
                ("observationType", "e.\"observationType\"", Ty::Text),
                ("properties", "e.properties", Ty::Object),
            ],
            Entity::Observations => &[
                ("id", OBSERVATION_ID, Ty::Text),
                ("phenomenonTime", "e.time", Ty::Time),
                ("resultTime", "e.time", Ty::Time),
                ("result", "e.value", Ty::Number),
            ],
        }
    }

    /// The entity's own properties as one JSON object (SQL over `e`); `None`
    /// for observations. Built as `json` text, not `jsonb` (here and in the
    /// bases' `properties`): nothing compares or indexes these objects, and
    /// `jsonb` built each one in binary and wrote it out as text again;
    /// `Things?$expand=Datastreams` (1,000 datastreams) took 27.6 ms of query
    /// time that way and 14.7 ms as `json`.
    pub fn json(self) -> Option<&'static str> {
        Some(match self {
            Entity::Things => "json_build_object('name', e.name, 'description', e.description, 'properties', e.properties)",
            Entity::Locations => "json_build_object('name', e.name, 'description', e.description, 'encodingType', e.\"encodingType\",
                'location', json_build_object('type', 'Point', 'coordinates', json_build_array(e.geo[0], e.geo[1])))",
            Entity::FeaturesOfInterest => "json_build_object('name', e.name, 'description', e.description, 'encodingType', e.\"encodingType\",
                'feature', json_build_object('type', 'Point', 'coordinates', json_build_array(e.geo[0], e.geo[1])))",
            Entity::HistoricalLocations => "json_build_object('time', to_char(e.time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))",
            Entity::Sensors => "json_build_object('name', e.name, 'description', e.description, 'encodingType', e.\"encodingType\", 'metadata', e.metadata)",
            Entity::ObservedProperties => "json_build_object('name', e.name, 'definition', e.definition, 'description', e.description)",
            Entity::Datastreams => "json_build_object('name', e.name, 'description', e.description,
                'unitOfMeasurement', json_build_object('name', e.unit_symbol, 'symbol', e.unit_symbol,
                    'definition', CASE WHEN e.unit_symbol = '' THEN '' ELSE 'https://ucum.org/ucum#' || e.unit_symbol END),
                'observationType', e.\"observationType\", 'properties', e.properties)",
            // Observations, the bulk of every read, are fetched as typed columns and written in Rust.
            Entity::Observations => return None,
        })
    }

    /// The default (and tie-breaking) order: by id.
    pub fn default_order(self) -> &'static str {
        if self == Entity::Observations {
            "e.datastream_id, e.time"
        } else {
            "e.id"
        }
    }

    pub fn navigations(self) -> &'static [Navigation] {
        use Entity::*;
        match self {
            Things => {
                const {
                    &[
                        nav("Datastreams", Datastreams, "id", "thing_id", false),
                        nav("Locations", Locations, "id", "id", false),
                        nav("HistoricalLocations", HistoricalLocations, "id", "id", false),
                    ]
                }
            }
            Locations => {
                const {
                    &[
                        nav("Things", Things, "id", "id", false),
                        nav("HistoricalLocations", HistoricalLocations, "id", "id", false),
                    ]
                }
            }
            HistoricalLocations => {
                const { &[nav("Thing", Things, "thing_id", "id", true), nav("Locations", Locations, "id", "id", false)] }
            }
            Datastreams => {
                const {
                    &[
                        nav("Thing", Things, "thing_id", "id", true),
                        nav("Sensor", Sensors, "thing_id", "id", true),
                        nav("ObservedProperty", ObservedProperties, "property_id", "id", true),
                        nav("Observations", Observations, "id", "datastream_id", false),
                    ]
                }
            }
            Sensors => const { &[nav("Datastreams", Datastreams, "id", "thing_id", false)] },
            ObservedProperties => const { &[nav("Datastreams", Datastreams, "id", "property_id", false)] },
            Observations => {
                const {
                    &[
                        nav("Datastream", Datastreams, "datastream_id", "id", true),
                        nav("FeatureOfInterest", FeaturesOfInterest, "thing_id", "id", true),
                    ]
                }
            }
            FeaturesOfInterest => const { &[nav("Observations", Observations, "id", "thing_id", false)] },
        }
    }

    pub fn navigation(self, name: &str) -> Option<Navigation> {
        self.navigations().iter().copied().find(|n| n.name == name)
    }

    pub fn property(self, name: &str) -> Option<(&'static str, Ty)> {
        self.properties().iter().find(|(n, _, _)| *n == name).map(|(_, sql, ty)| (*sql, *ty))
    }
}

/// `'{datastream}-{microseconds since 1970}'`.
pub const OBSERVATION_ID: &str =
    "(e.datastream_id::text || '-' || ((extract(epoch FROM e.time) * 1000000)::numeric(20, 0))::text)";

/// Splits an observation id into datastream and microseconds.
pub fn parse_observation_id(id: &str) -> Option<(i64, i64)> {
    let (datastream, micros) = id.split_once('-')?;
    Some((datastream.parse().ok()?, micros.parse().ok()?))
}
