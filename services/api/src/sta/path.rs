//! Resolving a SensorThings resource path (`Things(1)/Datastreams`,
//! `Datastreams(5)/Observations('5-…')`, `Things(1)/name/$value`, `…/$ref`)
//! to what it addresses: an entity type and the conditions on its base
//! query. Each navigation's source must exist in the caller's view; its key
//! finds the targets.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use hoheit_domain::DatastreamId;
use sqlx::Row;

use super::model::{self, Entity, Navigation};
use super::scope::Scope;
use super::sql::{self, Sql};
use crate::error::ApiError;
use crate::AppState;

/// One segment of the path: a name and an optional key, `Things(1)`.
#[derive(Debug)]
pub struct Segment {
    name: String,
    key: Option<Key>,
}

#[derive(Debug, Clone)]
pub enum Key {
    Number(i64),
    Text(String),
}

/// Splits the path into its segments; 400 for a malformed one.
pub fn parse(resource: &str) -> Result<Vec<Segment>, ApiError> {
    if resource.len() > 1_024 {
        return Err(ApiError::BadRequest("the resource path is longer than 1,024 characters".into()));
    }
    let mut segments = Vec::new();
    for raw in resource.trim_end_matches('/').split('/') {
        let (name, key) = match raw.find('(') {
            None => (raw, None),
            Some(i) => {
                let inner = raw[i + 1..].strip_suffix(')').ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`{}` does not close its key",
                        raw.chars().take(80).collect::<String>()
                    ))
                })?;
                let key = if let Some(text) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    Key::Text(text.replace("''", "'"))
                } else {
                    Key::Number(inner.parse().map_err(|_| {
                        ApiError::BadRequest(format!(
                            "`{}` is not an id: a whole number or a quoted string",
                            inner.chars().take(80).collect::<String>()
                        ))
                    })?)
                };
                (&raw[..i], Some(key))
            }
        };
        if name.is_empty() {
            return Err(ApiError::BadRequest("empty segment in the resource path".into()));
        }
        segments.push(Segment { name: name.to_owned(), key });
    }
    Ok(segments)
}

/// What a path addresses.
pub struct Target {
    pub entity: Entity,
    /// Conditions on the entity's base query (`e.col = value`).
    pub conditions: Vec<Condition>,
    pub single: bool,
    /// The navigation the target was reached by: source entity type, navigation, source column's value.
    pub via: Option<(Entity, Navigation, i64)>,
    /// `…/name` or `…/unitOfMeasurement`, and whether `/$value` follows.
    pub property: Option<(String, bool)>,
    pub reference: bool,
}

impl Target {
    /// The one datastream whose observations this target reads, if it is
    /// addressed by the path (`Datastreams(5)/Observations`, an observation by id).
    pub fn observed_datastream(&self) -> Option<DatastreamId> {
        match (&self.via, self.conditions.first()) {
            (Some((_, nav, id)), _) if nav.target == Entity::Observations && nav.target_column == "datastream_id" => {
                Some(DatastreamId(*id))
            }
            (None, Some(Condition::Observation(ds, _))) => Some(DatastreamId(*ds)),
            _ => None,
        }
    }
}

/// A condition on an entity's base query.
#[derive(Debug, Clone)]
pub enum Condition {
    Equals(&'static str, i64),
    Observation(i64, DateTime<Utc>),
}

/// What `path` addresses; 404 if a navigation's source is not in the caller's view.
pub async fn resolve(state: &AppState, scope: &Scope<'_>, path: &[Segment]) -> Result<Target, ApiError> {
    let first = &path[0];
    let entity = Entity::from_plural(&first.name).ok_or_else(|| {
        let names: Vec<&str> = model::ALL.iter().map(|e| e.plural()).collect();
        ApiError::NotFound(format!("no entity set `{}`; there are {}", first.name, names.join(", ")))
    })?;
    let mut target =
        Target { entity, conditions: Vec::new(), single: false, via: None, property: None, reference: false };
    if let Some(key) = &first.key {
        target.conditions.push(key_condition(entity, key)?);
        target.single = true;
    }
    let mut rest = path[1..].iter().peekable();
    while let Some(segment) = rest.next() {
        if segment.name == "$ref" && segment.key.is_none() && rest.peek().is_none() {
            target.reference = true;
            break;
        }
        if !target.single {
            return Err(ApiError::BadRequest(format!(
                "`{}` follows a collection; address one entity first, e.g. {}(1)/{}",
                segment.name,
                target.entity.plural(),
                segment.name
            )));
        }
        if let Some(nav) = target.entity.navigation(&segment.name) {
            // The source entity must exist and be visible; its key finds the targets.
            // (A datastream's own id needs no query: the scope lists the visible ones.)
            let value = match target.conditions.as_slice() {
                [Condition::Equals("id", id)] if target.entity == Entity::Datastreams && nav.source_column == "id" => {
                    if !scope.shows(*id) {
                        return Err(not_found(&target));
                    }
                    *id
                }
                _ => {
                    let keys = fetch_keys(state, scope, &target).await?;
                    keys.get(nav.source_column).copied().ok_or(ApiError::Internal)?
                }
            };
            target = Target {
                entity: nav.target,
                conditions: vec![Condition::Equals(nav.target_column, value)],
                single: nav.single,
                via: Some((target.entity, nav, value)),
                property: None,
                reference: false,
            };
            if let Some(key) = &segment.key {
                if nav.single {
                    return Err(ApiError::BadRequest(format!("`{}` is a single entity and takes no id", nav.name)));
                }
                target.conditions.push(key_condition(nav.target, key)?);
                target.single = true;
            }
            continue;
        }
        let is_property = target.entity.property(&segment.name).is_some()
            || target.entity.properties().iter().any(|(n, _, _)| n.split('/').next() == Some(segment.name.as_str()))
            || segment.name == "id";
        if is_property && segment.key.is_none() {
            let value = match rest.next() {
                None => false,
                Some(s) if s.name == "$value" && rest.peek().is_none() => true,
                Some(s) => {
                    return Err(ApiError::BadRequest(format!(
                        "only $value may follow the property `{}`, not `{}`",
                        segment.name, s.name
                    )))
                }
            };
            target.property = Some((segment.name.clone(), value));
            break;
        }
        let navs: Vec<&str> = target.entity.navigations().iter().map(|n| n.name).collect();
        return Err(ApiError::NotFound(format!(
            "{} has no navigation or property `{}`; its navigations are {}",
            target.entity.plural(),
            segment.name,
            navs.join(", ")
        )));
    }
    Ok(target)
}

fn key_condition(entity: Entity, key: &Key) -> Result<Condition, ApiError> {
    match (entity.text_id(), key) {
        (false, Key::Number(n)) => Ok(Condition::Equals("id", *n)),
        (true, Key::Text(text)) => model::parse_observation_id(text)
            .and_then(|(ds, micros)| Utc.timestamp_micros(micros).single().map(|t| Condition::Observation(ds, t)))
            .ok_or_else(|| {
                ApiError::NotFound(format!("no observation '{text}': ids are '<datastream>-<microseconds since 1970>'"))
            }),
        (true, Key::Number(n)) => {
            Err(ApiError::NotFound(format!("no observation {n}: ids are quoted, '<datastream>-<microseconds>'")))
        }
        (false, Key::Text(text)) => {
            Err(ApiError::NotFound(format!("{} ids are numbers, not '{text}'", entity.plural())))
        }
    }
}

/// Appends `conditions` to a query whose entity is aliased `e`.
pub fn push_conditions(sql: &mut Sql, conditions: &[Condition]) {
    for condition in conditions {
        match condition {
            Condition::Equals(column, value) => {
                sql.push(format!(" AND e.{column} = ")).push_bind(*value);
            }
            Condition::Observation(datastream, time) => {
                sql.push(" AND e.datastream_id = ").push_bind(*datastream).push(" AND e.time = ").push_bind(*time);
            }
        }
    }
}

/// The integer columns of an entity that navigations start from.
pub fn key_columns(entity: Entity) -> Vec<&'static str> {
    let mut columns: Vec<&'static str> = entity.navigations().iter().map(|n| n.source_column).collect();
    if entity == Entity::Observations {
        columns.push("datastream_id");
    } else {
        columns.push("id");
    }
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// The key columns of the single entity `target` addresses; 404 if it does not exist or is not visible.
async fn fetch_keys(
    state: &AppState,
    scope: &Scope<'_>,
    target: &Target,
) -> Result<HashMap<&'static str, i64>, ApiError> {
    let view = scope.of(target.entity, None);
    let columns = key_columns(target.entity);
    let mut sql = Sql::new("SELECT ");
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push(format!("e.{column}"));
    }
    sql.push(" FROM ");
    sql::push_base(&mut sql, target.entity, &view, "e");
    sql.push(" WHERE true");
    push_conditions(&mut sql, &target.conditions);
    sql.push(" LIMIT 1");
    let row = sql.build().fetch_optional(&state.pool).await?.ok_or_else(|| not_found(target))?;
    Ok(columns.iter().map(|c| (*c, row.get::<i64, _>(*c))).collect())
}

pub fn not_found(target: &Target) -> ApiError {
    ApiError::NotFound(format!("no such {} visible to this caller", target.entity.plural()))
}
