//! OGC SensorThings API 1.1, read part (Sensing core), under `/sta/v1.1`.
//!
//! The entity model is in [`model`]; `$filter`/`$orderby` are parsed in
//! [`expr`] and become SQL with bound parameters in [`sql`]; the other query
//! options are in [`options`]. Every request sees only what the policy lets
//! its caller see: metadata of datastreams it may read at all, observations
//! only of datastreams it may read raw for the requested time range, and every
//! read of observations is audited, exactly as on Hoheit's own API (a read
//! under a grant counts against the grant's rate before its query runs).
//!
//! One request does bounded work: `$filter`/`$orderby` are limited in size and
//! navigations when the options are read, and a response in entities
//! ([`options::MAX_ENTITIES`]) before any query runs and again while it is
//! built. Links start with the configured public base URL, never with the
//! request's `Host`.

mod expr;
mod model;
mod options;
mod sql;

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, TimeZone, Utc};
use hoheit_domain::policy::{decide, DatasetAccess, Decision, GrantTerms, ReadRequest, Resolution, Via};
use hoheit_domain::DatastreamId;
use hoheit_store::audit::AuditRecord;
use hoheit_store::datasets;
use serde_json::{json, Map, Value};
use sqlx::Row;

use crate::access::{authorize_datastream, check_grant_rate};
use crate::auth::Who;
use crate::error::ApiError;
use crate::routes::datastreams::visibility;
use crate::AppState;
use model::{Entity, Navigation};
use options::{Expand, Options, MAX_ENTITIES};
use sql::{Sql, Translator, View};

/// Where the service lives, below the API's base URL.
pub const STA_PATH: &str = crate::dcat::STA_PATH;

/// The service root: the entity sets and the conformance classes served.
#[utoipa::path(get, operation_id = "sta_root", path = "/sta/v1.1", tag = "sensorthings", security((), ("bearer" = [])),
    responses((status = 200, description = "the SensorThings service root: entity sets and conformance classes")))]
pub async fn root(State(state): State<AppState>) -> Json<Value> {
    let base = format!("{}{STA_PATH}", state.public_base);
    let value: Vec<Value> =
        model::ALL.iter().map(|e| json!({"name": e.plural(), "url": format!("{base}/{}", e.plural())})).collect();
    Json(json!({
        "value": value,
        "serverSettings": {
            "conformance": [
                "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
                "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
            ]
        }
    }))
}

/// Any resource path below the root: entity sets, entities by id
/// (`Things(1)`), navigation (`Datastreams(5)/Observations`), properties and
/// `$value`, `$ref`; with `$filter`, `$expand`, `$select`, `$orderby`,
/// `$top`, `$skip`, `$count` and `$resultFormat=dataArray`.
#[utoipa::path(get, operation_id = "sta_resource", path = "/sta/v1.1/{*resource}", tag = "sensorthings", security((), ("bearer" = [])),
    params(("resource" = String, Path, description = "resource path, e.g. `Things`, `Datastreams(5)/Observations`, `Things(1)/name/$value`")),
    responses(
        (status = 200, description = "the entity, collection or property"),
        (status = 400, description = "an unsupported or malformed path or query option, with the reason", body = crate::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub async fn resource(
    State(state): State<AppState>,
    who: Who,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let base = format!("{}{STA_PATH}", state.public_base);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = parse_path(&resource)?;
    let gate = Gate::load(&state, &who).await?;
    let target = resolve(&state, &gate, &path).await?;
    let options = Options::from_pairs(target.entity, &pairs).map_err(ApiError::BadRequest)?;
    let mut ctx = Context {
        state: &state,
        who: &who,
        gate: &gate,
        base,
        audit: BTreeMap::new(),
        charged: HashSet::new(),
        granted: BTreeMap::new(),
        fetched: 0,
    };
    let response = ctx.answer(&target, &options, &pairs).await?;
    ctx.write_audit().await?;
    Ok(response)
}

// ---- the resource path ----

#[derive(Debug)]
struct Segment {
    name: String,
    key: Option<Key>,
}

#[derive(Debug, Clone)]
enum Key {
    Number(i64),
    Text(String),
}

fn parse_path(resource: &str) -> Result<Vec<Segment>, ApiError> {
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
struct Target {
    entity: Entity,
    /// Conditions on the entity's base query (`e.col = value`).
    conditions: Vec<Condition>,
    single: bool,
    /// The navigation the target was reached by: source entity type, navigation, source column's value.
    via: Option<(Entity, Navigation, i64)>,
    /// `…/name` or `…/unitOfMeasurement`, and whether `/$value` follows.
    property: Option<(String, bool)>,
    reference: bool,
}

#[derive(Debug, Clone)]
enum Condition {
    Equals(&'static str, i64),
    Observation(i64, DateTime<Utc>),
}

async fn resolve(state: &AppState, gate: &Gate, path: &[Segment]) -> Result<Target, ApiError> {
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
            // (A datastream's own id needs no query: the gate lists the visible ones.)
            let value = match target.conditions.as_slice() {
                [Condition::Equals("id", id)] if target.entity == Entity::Datastreams && nav.source_column == "id" => {
                    if !gate.visible.contains(id) {
                        return Err(not_found(&target));
                    }
                    *id
                }
                _ => {
                    let keys = fetch_keys(state, gate, &target).await?;
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

fn push_conditions(sql: &mut Sql, conditions: &[Condition]) {
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
fn key_columns(entity: Entity) -> Vec<&'static str> {
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
async fn fetch_keys(state: &AppState, gate: &Gate, target: &Target) -> Result<HashMap<&'static str, i64>, ApiError> {
    let view = gate.view_for(target, None);
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

fn not_found(target: &Target) -> ApiError {
    ApiError::NotFound(format!("no such {} visible to this caller", target.entity.plural()))
}

// ---- what the caller may see ----

/// The caller's view, decided by the policy (`hoheit_domain::policy::decide`).
struct Gate {
    access: HashMap<i64, DatasetAccess>,
    grants: Vec<GrantTerms>,
    /// Datastreams whose metadata the caller may see.
    visible: Vec<i64>,
    caller: std::sync::Arc<hoheit_domain::policy::Caller>,
}

impl Gate {
    async fn load(state: &AppState, who: &Who) -> Result<Self, ApiError> {
        let access: HashMap<i64, DatasetAccess> =
            datasets::access_all(&state.pool).await?.into_iter().map(|(id, a)| (id.0, a)).collect();
        let grants = crate::access::grants_held(state, &who.0).await?;
        let mut visible: Vec<i64> =
            access.iter().filter(|(_, a)| visibility(&who.0, a, &grants).0).map(|(id, _)| *id).collect();
        visible.sort_unstable();
        Ok(Gate { access, grants, visible, caller: who.0.clone() })
    }

    fn decide(&self, datastream: i64, request: &ReadRequest) -> Decision {
        match self.access.get(&datastream) {
            Some(access) => decide(&self.caller, access, &self.grants, request, Utc::now()),
            None => Decision::Deny { reason: format!("datastream {datastream} does not exist") },
        }
    }

    /// The view for a query of `target`; for observations, the datastreams
    /// readable raw over `request`'s range.
    fn view_for(&self, target: &Target, request: Option<&ReadRequest>) -> View {
        let readable = if target.entity == Entity::Observations {
            let request = request.copied().unwrap_or_else(|| unbounded(None, None));
            self.visible.iter().copied().filter(|id| self.decide(*id, &request).is_allowed()).collect()
        } else {
            Vec::new()
        };
        View { datastreams: self.visible.clone(), readable }
    }

    /// The grants that let the caller read `datastreams` over `request`'s range, each once.
    fn grants_used(&self, datastreams: &[i64], request: &ReadRequest) -> Vec<GrantTerms> {
        let mut used: Vec<GrantTerms> = Vec::new();
        for id in datastreams {
            if let Decision::Allow { via: Via::Grant(grant), .. } = self.decide(*id, request) {
                if !used.iter().any(|g| g.id == grant.id) {
                    used.push(grant);
                }
            }
        }
        used
    }
}

/// A raw read over `[from, to)`; an open end is the whole time axis.
fn unbounded(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> ReadRequest {
    let earliest = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single().expect("year 1 exists");
    let latest = Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).single().expect("year 9999 exists");
    ReadRequest { resolution: Resolution::Raw, from: from.unwrap_or(earliest), to: to.unwrap_or(latest) }
}

fn read_request(options: &Options) -> ReadRequest {
    let (from, to) = options.filter.as_ref().map(sql::time_bounds).unwrap_or((None, None));
    unbounded(from, to)
}

// ---- answering ----

struct Context<'a> {
    state: &'a AppState,
    who: &'a Who,
    gate: &'a Gate,
    base: String,
    /// Observations returned, per datastream, with the range decided: audited at the end.
    audit: BTreeMap<i64, (usize, ReadRequest)>,
    /// Grants whose rate this request was charged (once per grant and request).
    charged: HashSet<i64>,
    /// Per dataset, the grant a query of this request read its observations
    /// under and the range: audited with the grant even if no row came back.
    granted: BTreeMap<i64, (GrantTerms, ReadRequest)>,
    /// Entities fetched so far; each is written at least once, so this never
    /// passes [`MAX_ENTITIES`] in a response that keeps the bound.
    fetched: u64,
}

/// One fetched entity.
struct Fetched {
    id: Value,
    keys: HashMap<&'static str, i64>,
    body: Map<String, Value>,
    /// For expansion: the value of the source column it was found by.
    parent: Option<i64>,
    /// The entities it writes: itself and everything expanded under it.
    entities: u64,
}

/// A response beyond [`MAX_ENTITIES`], found while building it (the bound
/// checked before building, `Options::page_size`, normally prevents this).
fn too_many_entities() -> ApiError {
    ApiError::BadRequest(format!(
        "the response would hold more than {MAX_ENTITIES} entities; lower $top inside $expand or expand fewer levels"
    ))
}

impl Context<'_> {
    async fn answer(
        &mut self,
        target: &Target,
        options: &Options,
        pairs: &[(String, String)],
    ) -> Result<Response, ApiError> {
        let top = if target.single { 1 } else { options.top() };
        // The bound of the response, before any query: pages small enough
        // that the expansion cannot pass it, or 400 if one entity can.
        let page_size = options.page_size(target.entity, top).map_err(ApiError::BadRequest)?;
        let request = read_request(options);
        let mut view = self.gate.view_for(target, Some(&request));
        // Observations of one datastream, addressed by path: the read gate decides and
        // explains a denial (403 with the reason), as on Hoheit's own API.
        let single_stream = match (&target.via, target.conditions.first()) {
            (Some((_, nav, id)), _) if nav.target == Entity::Observations && nav.target_column == "datastream_id" => {
                Some(*id)
            }
            (None, Some(Condition::Observation(ds, _))) => Some(*ds),
            _ => None,
        };
        let mut permit = None;
        if let Some(datastream) = single_stream {
            if !self.gate.visible.contains(&datastream) {
                return Err(not_found(target));
            }
            let hint = options.filter.is_none() || request.from.timestamp() < 0;
            let p = authorize_datastream(self.state, self.who, DatastreamId(datastream), "sta:observations", request)
                .await
                .map_err(|e| match e {
                    ApiError::Forbidden(reason) if hint => ApiError::Forbidden(format!(
                        "{reason}. SensorThings: restrict the time with $filter, e.g. phenomenonTime ge 2026-11-01T00:00:00Z"
                    )),
                    other => other,
                })?;
            view.readable = vec![datastream];
            permit = Some(p);
            // The read gate charged its grant already.
            self.charged.extend(self.gate.grants_used(&view.readable, &request).iter().map(|g| g.id));
        }
        self.charge_grants(&view.readable, &request).await?;
        let mut rows = self.fetch(target.entity, &view, &target.conditions, None, options, page_size + 1).await?;
        // `$top=0` asks for the count alone: no next page to follow.
        let more = page_size > 0 && rows.len() as i64 > page_size;
        rows.truncate(page_size as usize);
        self.fetched += rows.len() as u64;
        let count = if options.count && !target.single {
            Some(self.count(target.entity, &view, &target.conditions, options).await?)
        } else {
            None
        };
        self.expand(target.entity, &mut rows, &options.expand, &request).await?;
        if target.entity == Entity::Observations {
            let mut returned = 0;
            for row in &rows {
                if let Some(ds) = row.keys.get("datastream_id") {
                    returned += 1;
                    self.audit.entry(*ds).or_insert((0, request)).0 += 1;
                }
            }
            if let Some(permit) = permit {
                // Audited by the permit, not by the per-dataset records.
                if let Some(ds) = single_stream {
                    self.audit.remove(&ds);
                }
                permit.finish(self.state, returned).await?;
            } else if rows.is_empty() {
                self.audit.entry(0).or_insert((0, request));
            }
        }
        if target.single {
            let row = rows.pop().ok_or_else(|| not_found(target))?;
            if target.reference {
                return Ok(Json(json!({"@iot.selfLink": self.self_link(target.entity, &row.id)})).into_response());
            }
            if let Some((property, raw)) = &target.property {
                return self.property(target.entity, row, property, *raw);
            }
            return Ok(Json(Value::Object(self.render(target.entity, row, options))).into_response());
        }
        let mut page = Map::new();
        if let Some(count) = count {
            page.insert("@iot.count".into(), json!(count));
        }
        if more {
            page.insert("@iot.nextLink".into(), json!(self.next_link(target, pairs, options, page_size)));
        }
        let value: Vec<Value> = if target.reference {
            rows.iter().map(|r| json!({"@iot.selfLink": self.self_link(target.entity, &r.id)})).collect()
        } else if options.data_array {
            self.data_array(rows, options)
        } else {
            rows.into_iter().map(|r| Value::Object(self.render(target.entity, r, options))).collect()
        };
        page.insert("value".into(), Value::Array(value));
        Ok(Json(Value::Object(page)).into_response())
    }

    /// Rows of `entity` in `view` under `conditions`, `$filter` and `$orderby`.
    /// With `parents`: for each parent key value in `target_column`, at most
    /// `limit` rows (one LATERAL subquery per parent).
    async fn fetch(
        &self,
        entity: Entity,
        view: &View,
        conditions: &[Condition],
        parents: Option<(&'static str, Vec<i64>)>,
        options: &Options,
        limit: i64,
    ) -> Result<Vec<Fetched>, ApiError> {
        let translator = Translator { view };
        let columns = key_columns(entity);
        let mut sql = Sql::new("");
        let lateral = parents.is_some();
        if let Some((_, keys)) = &parents {
            sql.push("SELECT k.key AS parent_key, x.* FROM unnest(")
                .push_bind(keys.clone())
                .push("::bigint[]) AS k(key) CROSS JOIN LATERAL (");
        }
        // Observations, the bulk of what is read, come as typed columns and are
        // written in Rust; other entities as one JSON object built in SQL.
        let json = entity.json();
        match json {
            Some(json) => sql.push("SELECT e.id AS iot_id, ").push(json).push(" AS body"),
            None => sql.push("SELECT e.time AS obs_time, e.value AS obs_value"),
        };
        for column in &columns {
            sql.push(format!(", e.{column} AS k_{column}"));
        }
        sql.push(" FROM ");
        sql::push_base(&mut sql, entity, view, "e");
        sql.push(" WHERE true");
        push_conditions(&mut sql, conditions);
        if let Some((column, _)) = &parents {
            sql.push(format!(" AND e.{column} = k.key"));
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
        if lateral {
            // One row past the entities the response has left is enough to refuse it.
            let left = MAX_ENTITIES.saturating_sub(self.fetched) as i64;
            sql.push(") x LIMIT ").push_bind(left + 1);
        }
        let rows = sql.build().fetch_all(&self.state.pool).await.map_err(query_error)?;
        let mut fetched = Vec::with_capacity(rows.len());
        for row in rows {
            let keys: HashMap<&'static str, i64> =
                columns.iter().map(|c| (*c, row.get::<i64, _>(format!("k_{c}").as_str()))).collect();
            let (id, body) = if json.is_none() {
                let time: DateTime<Utc> = row.get("obs_time");
                let datastream = keys.get("datastream_id").copied().unwrap_or_default();
                let stamp = json!(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
                let mut body = Map::with_capacity(3);
                body.insert("phenomenonTime".into(), stamp.clone());
                body.insert("resultTime".into(), stamp);
                body.insert("result".into(), json!(row.get::<f64, _>("obs_value")));
                (json!(format!("{datastream}-{}", time.timestamp_micros())), body)
            } else {
                let body = match row.get::<Value, _>("body") {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                (json!(row.get::<i64, _>("iot_id")), body)
            };
            let parent = if lateral { Some(row.get::<i64, _>("parent_key")) } else { None };
            fetched.push(Fetched { id, keys, body, parent, entities: 1 });
        }
        Ok(fetched)
    }

    async fn count(
        &self,
        entity: Entity,
        view: &View,
        conditions: &[Condition],
        options: &Options,
    ) -> Result<i64, ApiError> {
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
        Ok(sql.build().fetch_one(&self.state.pool).await.map_err(query_error)?.get::<i64, _>(0))
    }

    /// Fills the `$expand`ed navigations of `rows`, recursively.
    fn expand<'s>(
        &'s mut self,
        entity: Entity,
        rows: &'s mut [Fetched],
        expands: &'s [Expand],
        outer: &'s ReadRequest,
    ) -> futures::future::BoxFuture<'s, Result<(), ApiError>> {
        Box::pin(async move {
            for expand in expands {
                let Some(nav) = entity.navigation(&expand.navigation) else { continue };
                let mut keys: Vec<i64> = rows.iter().filter_map(|r| r.keys.get(nav.source_column).copied()).collect();
                keys.sort_unstable();
                keys.dedup();
                let request = if nav.target == Entity::Observations { read_request(&expand.options) } else { *outer };
                let target = Target {
                    entity: nav.target,
                    conditions: Vec::new(),
                    single: nav.single,
                    via: None,
                    property: None,
                    reference: false,
                };
                let view = self.gate.view_for(&target, Some(&request));
                self.charge_grants(&view.readable, &request).await?;
                let limit = if nav.single { 1 } else { expand.options.top() };
                let mut children = if keys.is_empty() {
                    Vec::new()
                } else {
                    self.fetch(nav.target, &view, &[], Some((nav.target_column, keys)), &expand.options, limit).await?
                };
                self.fetched += children.len() as u64;
                if self.fetched > MAX_ENTITIES {
                    return Err(too_many_entities());
                }
                self.expand(nav.target, &mut children, &expand.options.expand, &request).await?;
                if nav.target == Entity::Observations {
                    for child in &children {
                        if let Some(ds) = child.keys.get("datastream_id") {
                            self.audit.entry(*ds).or_insert((0, request)).0 += 1;
                        }
                    }
                }
                // The children of each parent key, and the entities they write.
                let mut by_parent: HashMap<i64, (Vec<Value>, u64)> = HashMap::new();
                for child in children {
                    let parent = by_parent.entry(child.parent.unwrap_or_default()).or_default();
                    parent.1 += child.entities;
                    parent.0.push(Value::Object(self.render(nav.target, child, &expand.options)));
                }
                // Every parent gets its own copy: count the copies before making them.
                let found = |row: &Fetched| row.keys.get(nav.source_column).and_then(|k| by_parent.get(k));
                let written: u64 = rows.iter().map(|r| r.entities + found(r).map_or(0, |(_, n)| *n)).sum();
                if written > MAX_ENTITIES {
                    return Err(too_many_entities());
                }
                for row in rows.iter_mut() {
                    let (children, entities) = found(&*row).cloned().unwrap_or_default();
                    row.entities += entities;
                    let value = if nav.single {
                        children.into_iter().next().unwrap_or(Value::Null)
                    } else {
                        Value::Array(children)
                    };
                    row.body.insert(nav.name.to_owned(), value);
                }
            }
            Ok(())
        })
    }

    fn self_link(&self, entity: Entity, id: &Value) -> String {
        match id {
            Value::String(s) => format!("{}/{}('{}')", self.base, entity.plural(), s.replace('\'', "''")),
            other => format!("{}/{}({other})", self.base, entity.plural()),
        }
    }

    /// The entity as SensorThings writes it: `@iot.id`, `@iot.selfLink`, its
    /// properties, navigation links (or the expanded entities), cut to `$select`.
    fn render(&self, entity: Entity, row: Fetched, options: &Options) -> Map<String, Value> {
        let link = self.self_link(entity, &row.id);
        let mut out = Map::new();
        let selected = |name: &str| options.select.is_empty() || options.select.iter().any(|s| s == name);
        if selected("id") || selected("@iot.id") {
            out.insert("@iot.id".into(), row.id.clone());
        }
        if options.select.is_empty() {
            out.insert("@iot.selfLink".into(), json!(link));
        }
        let expanded: HashSet<&str> = options.expand.iter().map(|e| e.navigation.as_str()).collect();
        let mut body = row.body;
        for nav in entity.navigations() {
            if expanded.contains(nav.name) {
                if let Some(value) = body.remove(nav.name) {
                    out.insert(nav.name.to_owned(), value);
                }
            } else if selected(nav.name) {
                out.insert(format!("{}@iot.navigationLink", nav.name), json!(format!("{link}/{}", nav.name)));
            }
        }
        for (key, value) in body {
            if selected(&key) {
                out.insert(key, value);
            }
        }
        out
    }

    fn property(&self, entity: Entity, row: Fetched, property: &str, raw: bool) -> Result<Response, ApiError> {
        let value = if property == "id" {
            row.id.clone()
        } else {
            row.body
                .get(property)
                .cloned()
                .ok_or_else(|| ApiError::NotFound(format!("{} has no property `{property}`", entity.plural())))?
        };
        if raw {
            let text = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut response = text.into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            return Ok(response);
        }
        let mut out = Map::new();
        out.insert(if property == "id" { "@iot.id".into() } else { property.to_owned() }, value);
        Ok(Json(Value::Object(out)).into_response())
    }

    /// The dataArray result format: observations grouped by datastream.
    fn data_array(&self, rows: Vec<Fetched>, options: &Options) -> Vec<Value> {
        let components: Vec<String> = if options.select.is_empty() {
            ["id", "phenomenonTime", "resultTime", "result"].map(String::from).to_vec()
        } else {
            options.select.clone()
        };
        let mut groups: Vec<(i64, Vec<Value>)> = Vec::new();
        for row in rows {
            let ds = row.keys.get("datastream_id").copied().unwrap_or_default();
            let line: Vec<Value> = components
                .iter()
                .map(|c| if c == "id" { row.id.clone() } else { row.body.get(c).cloned().unwrap_or(Value::Null) })
                .collect();
            match groups.iter_mut().find(|(d, _)| *d == ds) {
                Some((_, lines)) => lines.push(Value::Array(line)),
                None => groups.push((ds, vec![Value::Array(line)])),
            }
        }
        groups
            .into_iter()
            .map(|(ds, lines)| {
                json!({
                    "Datastream@iot.navigationLink": format!("{}/Datastreams({ds})", self.base),
                    "components": components,
                    "dataArray@iot.count": lines.len(),
                    "dataArray": lines,
                })
            })
            .collect()
    }

    /// The next page after this one of `page_size` entities, with the client's own `$top`.
    fn next_link(&self, target: &Target, pairs: &[(String, String)], options: &Options, page_size: i64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            if key != "$skip" && key != "$top" {
                query.append_pair(key, value);
            }
        }
        query.append_pair("$top", &options.top().to_string());
        query.append_pair("$skip", &(options.skip + page_size).to_string());
        let path = match &target.via {
            // Collections are reached from their source's id: `Things(1)/Datastreams`.
            Some((source, nav, value)) => format!("{}/{}({value})/{}", self.base, source.plural(), nav.name),
            None => format!("{}/{}", self.base, target.entity.plural()),
        };
        format!("{path}?{}", query.finish())
    }

    /// Applies the rate of every grant under which a query of `readable`
    /// would read observations, before it runs, once per grant and request
    /// (a collection spans datastreams of several datasets and grants).
    async fn charge_grants(&mut self, readable: &[i64], request: &ReadRequest) -> Result<(), ApiError> {
        for grant in self.gate.grants_used(readable, request) {
            if self.charged.insert(grant.id) {
                check_grant_rate(self.state, self.who, &grant).await?;
                self.granted.entry(grant.dataset_id).or_insert((grant, *request));
            }
        }
        Ok(())
    }

    /// One audit record per dataset whose observations this request returned
    /// or read under a grant, with the grant that allowed it.
    async fn write_audit(&mut self) -> Result<(), ApiError> {
        // dataset → (rows, range decided, a datastream read, whether it was the only one)
        let mut per_dataset: BTreeMap<i64, (usize, ReadRequest, Option<i64>, bool)> = BTreeMap::new();
        for (ds, (rows, request)) in &self.audit {
            let dataset = self.gate.access.get(ds).and_then(|a| a.id).unwrap_or(0);
            let entry = per_dataset.entry(dataset).or_insert((0, *request, Some(*ds), true));
            entry.0 += rows;
            if entry.2 != Some(*ds) {
                entry.3 = false;
            }
        }
        // A grant's dataset queried without a row coming back is audited too: its rate was charged.
        for (dataset, (_, request)) in &self.granted {
            per_dataset.entry(*dataset).or_insert((0, *request, None, false));
        }
        // The record of an empty read (dataset 0) is needed only if there is no other.
        if per_dataset.len() > 1 && per_dataset.get(&0).is_some_and(|(rows, ..)| *rows == 0) {
            per_dataset.remove(&0);
        }
        for (dataset, (rows, request, datastream, only)) in per_dataset {
            // The datastreams of one dataset share its access: any of them tells the way.
            let decided = datastream.map(|ds| self.gate.decide(ds, &request));
            let via = match decided {
                Some(Decision::Allow { via, .. }) => Some(via),
                _ => self.granted.get(&dataset).map(|(grant, _)| Via::Grant(grant.clone())),
            };
            let record = AuditRecord {
                grant_id: via.as_ref().and_then(|v| v.grant()).map(|g| g.id),
                dataset_id: (dataset != 0).then_some(dataset),
                datastream_id: datastream.filter(|d| *d != 0 && only),
                range_from: Some(request.from),
                range_to: Some(request.to),
                resolution: "raw".into(),
                rows_returned: rows as i64,
                allowed: true,
                reason: via
                    .map(|v| v.describe())
                    .unwrap_or_else(|| "SensorThings observations of the caller's view".into()),
                ..crate::access::audit_record(self.who, "sta:observations")
            };
            self.state.audit.append(record).await?;
        }
        Ok(())
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
