//! How SensorThings writes what was fetched: entities with `@iot.id`,
//! `@iot.selfLink` and navigation links (or their expansions), cut to
//! `$select`; single properties and `$value`; the dataArray format; the
//! next page's link. Every link starts with the configured public base URL.

use std::collections::HashSet;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::answer::Page;
use super::fetch::Fetched;
use super::model::Entity;
use super::options::Options;
use super::path::{not_found, Target};
use crate::error::ApiError;

/// Writes the entities of one response; links start with `base`.
pub struct Writer {
    /// The public base URL and the service's path.
    pub base: String,
}

impl Writer {
    /// The entity's `@iot.selfLink`.
    pub fn self_link(&self, entity: Entity, id: &Value) -> String {
        match id {
            Value::String(s) => format!("{}/{}('{}')", self.base, entity.plural(), s.replace('\'', "''")),
            other => format!("{}/{}({other})", self.base, entity.plural()),
        }
    }

    /// The entity as SensorThings writes it: `@iot.id`, `@iot.selfLink`, its
    /// properties, navigation links (or the expanded entities), cut to `$select`.
    pub fn render(&self, entity: Entity, row: Fetched, options: &Options) -> Map<String, Value> {
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

    pub fn property(&self, entity: Entity, row: Fetched, property: &str, raw: bool) -> Result<Response, ApiError> {
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
    pub fn data_array(&self, rows: Vec<Fetched>, options: &Options) -> Vec<Value> {
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
    pub fn next_link(&self, target: &Target, pairs: &[(String, String)], options: &Options, page_size: i64) -> String {
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
        // The next page of references is references too.
        let reference = if target.reference { "/$ref" } else { "" };
        format!("{path}{reference}?{}", query.finish())
    }

    /// The response to a request whose reads are audited: one entity (or its property, or its reference) or a page of them.
    pub fn respond(
        &self,
        target: &Target,
        mut page: Page,
        options: &Options,
        pairs: &[(String, String)],
    ) -> Result<Response, ApiError> {
        if target.single {
            let row = page.rows.pop().ok_or_else(|| not_found(target))?;
            if target.reference {
                return Ok(Json(json!({"@iot.selfLink": self.self_link(target.entity, &row.id)})).into_response());
            }
            if let Some((property, raw)) = &target.property {
                return self.property(target.entity, row, property, *raw);
            }
            return Ok(Json(Value::Object(self.render(target.entity, row, options))).into_response());
        }
        let mut out = Map::new();
        if let Some(count) = page.count {
            out.insert("@iot.count".into(), json!(count));
        }
        if page.more {
            out.insert("@iot.nextLink".into(), json!(self.next_link(target, pairs, options, page.size)));
        }
        let value: Vec<Value> = if target.reference {
            page.rows.iter().map(|r| json!({"@iot.selfLink": self.self_link(target.entity, &r.id)})).collect()
        } else if options.data_array {
            self.data_array(page.rows, options)
        } else {
            page.rows.into_iter().map(|r| Value::Object(self.render(target.entity, r, options))).collect()
        };
        out.insert("value".into(), Value::Array(value));
        Ok(Json(Value::Object(out)).into_response())
    }
}
