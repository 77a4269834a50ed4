//! The queries of a SensorThings answer: an entity type's rows in the
//! caller's view (`sql::push_base`) under the path's conditions, `$filter`,
//! `$orderby`, `$top` and `$skip`, for one page or for the parents of an
//! expansion; and `$count`. Every value is a bound parameter.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sqlx::{PgPool, Row};

use super::model::Entity;
use super::options::Options;
use super::path::{key_columns, push_conditions, Condition};
use super::sql::{self, Sql, Translator, View};
use crate::error::ApiError;

/// One fetched entity.
pub struct Fetched {
    pub id: Value,
    pub keys: HashMap<&'static str, i64>,
    pub body: Body,
    /// Its expanded navigations, each already written as JSON (an entity, an
    /// array of them, or `null`).
    pub expanded: Vec<(&'static str, Vec<u8>)>,
    /// For expansion: the value of the source column it was found by.
    pub parent: Option<i64>,
    /// The entities it writes: itself and everything expanded under it.
    pub entities: u64,
}

/// An entity's own properties. They are written as they came: parsing each
/// entity into a `serde_json::Value` tree, writing the tree and dropping it
/// was three fifths of the API's time in `Things?$expand=Datastreams`.
pub enum Body {
    /// One JSON object's text, as PostgreSQL wrote it (`Entity::json`).
    Json(String),
    /// An observation's time and result.
    Observation { time: DateTime<Utc>, result: f64 },
}

impl Body {
    /// The members as values: for `$select`, a single property and dataArray.
    pub fn members(&self) -> Map<String, Value> {
        match self {
            Body::Json(text) => serde_json::from_str(text).unwrap_or_default(),
            Body::Observation { time, result } => {
                let stamp = json!(hoheit_domain::rfc3339::to_string(time));
                let mut members = Map::with_capacity(3);
                members.insert("phenomenonTime".into(), stamp.clone());
                members.insert("resultTime".into(), stamp);
                members.insert("result".into(), json!(result));
                members
            }
        }
    }

    /// Writes the members, separated by commas, without the object's braces;
    /// whether there was any.
    pub fn write_members(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Body::Json(text) => {
                let inner = text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or("").trim();
                out.extend_from_slice(inner.as_bytes());
                !inner.is_empty()
            }
            Body::Observation { time, result } => {
                // Observations are the bulk of every read: no `format!` per member.
                let stamp = hoheit_domain::rfc3339::to_string(time);
                out.extend_from_slice(b"\"phenomenonTime\":\"");
                out.extend_from_slice(stamp.as_bytes());
                out.extend_from_slice(b"\",\"resultTime\":\"");
                out.extend_from_slice(stamp.as_bytes());
                out.extend_from_slice(b"\",\"result\":");
                // A number, or `null` for a value JSON has no number for (serde_json writes NaN so).
                let _ = serde_json::to_writer(&mut *out, result);
                true
            }
        }
    }
}

/// One query of entities: which, in which view, under which conditions and options.
#[derive(Clone, Copy)]
pub struct Query<'q> {
    pub entity: Entity,
    pub view: &'q View,
    pub conditions: &'q [Condition],
    pub options: &'q Options,
}

/// The parents an expansion fetches children for.
pub struct Parents {
    /// The children's column that holds a parent's key.
    pub column: &'static str,
    pub keys: Vec<i64>,
    /// The entities the response has left: one more row than these is enough to refuse it.
    pub left: u64,
}

impl Query<'_> {
    /// At most `limit` rows, or with `parents` at most `limit` rows for each
    /// parent (one LATERAL subquery per parent).
    pub async fn fetch(&self, pool: &PgPool, parents: Option<Parents>, limit: i64) -> Result<Vec<Fetched>, ApiError> {
        let Query { entity, view, conditions, options } = *self;
        let translator = Translator { view };
        let columns = key_columns(entity);
        let mut sql = Sql::new("");
        let lateral = parents.is_some();
        if let Some(parents) = &parents {
            sql.push("SELECT k.key AS parent_key, x.* FROM unnest(")
                .push_bind(parents.keys.clone())
                .push("::bigint[]) AS k(key) CROSS JOIN LATERAL (");
        }
        // Observations, the bulk of what is read, come as typed columns and are
        // written in Rust; other entities as one JSON object built in SQL.
        let json = entity.json();
        match json {
            Some(json) => sql.push("SELECT e.id AS iot_id, (").push(json).push(")::text AS body"),
            None => sql.push("SELECT e.time AS obs_time, e.value AS obs_value"),
        };
        for column in &columns {
            sql.push(format!(", e.{column} AS k_{column}"));
        }
        sql.push(" FROM ");
        sql::push_base(&mut sql, entity, view, "e");
        sql.push(" WHERE true");
        push_conditions(&mut sql, conditions);
        if let Some(parents) = &parents {
            sql.push(format!(" AND e.{} = k.key", parents.column));
        }
        if let Some(filter) = &options.filter {
            sql.push(" AND ");
            translator
                .push_filter(&mut sql, entity, filter)
                .map_err(|e| ApiError::BadRequest(format!("$filter: {e}")))?;
        }
        sql.push(" ORDER BY ");
        translator
            .push_order(&mut sql, entity, &options.orderby)
            .map_err(|e| ApiError::BadRequest(format!("$orderby: {e}")))?;
        sql.push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(options.skip);
        if let Some(parents) = &parents {
            // One row past the entities the response has left is enough to refuse it.
            sql.push(") x LIMIT ").push_bind(parents.left as i64 + 1);
        }
        let rows = sql.build().fetch_all(pool).await.map_err(query_error)?;
        let mut fetched = Vec::with_capacity(rows.len());
        for row in rows {
            let keys: HashMap<&'static str, i64> =
                columns.iter().map(|c| (*c, row.get::<i64, _>(format!("k_{c}").as_str()))).collect();
            let (id, body) = if json.is_none() {
                let time: DateTime<Utc> = row.get("obs_time");
                let datastream = keys.get("datastream_id").copied().unwrap_or_default();
                let body = Body::Observation { time, result: row.get("obs_value") };
                (json!(format!("{datastream}-{}", time.timestamp_micros())), body)
            } else {
                (json!(row.get::<i64, _>("iot_id")), Body::Json(row.get("body")))
            };
            let parent = if lateral { Some(row.get::<i64, _>("parent_key")) } else { None };
            fetched.push(Fetched { id, keys, body, expanded: Vec::new(), parent, entities: 1 });
        }
        Ok(fetched)
    }

    /// How many entities the query finds without `$top` and `$skip` (`$count`).
    pub async fn count(&self, pool: &PgPool) -> Result<i64, ApiError> {
        let Query { entity, view, conditions, options } = *self;
        let mut sql = Sql::new("SELECT count(*) FROM ");
        sql::push_base(&mut sql, entity, view, "e");
        sql.push(" WHERE true");
        push_conditions(&mut sql, conditions);
        if let Some(filter) = &options.filter {
            sql.push(" AND ");
            Translator { view }
                .push_filter(&mut sql, entity, filter)
                .map_err(|e| ApiError::BadRequest(format!("$filter: {e}")))?;
        }
        Ok(sql.build().fetch_one(pool).await.map_err(query_error)?.get::<i64, _>(0))
    }
}

/// A query the database refused because of the request (e.g. a value out of
/// range) is the client's error; anything else is the server's.
fn query_error(error: sqlx::Error) -> ApiError {
    if let sqlx::Error::Database(db) = &error {
        let code = db.code().unwrap_or_default();
        // Data exceptions (22…): overflow, invalid values, division by zero.
        if code.starts_with("22") {
            return ApiError::BadRequest(format!("the query cannot be evaluated: {}", db.message()));
        }
    }
    ApiError::from(error)
}
