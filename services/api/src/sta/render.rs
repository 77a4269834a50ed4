//! How SensorThings writes what was fetched: entities with `@iot.id`,
//! `@iot.selfLink` and navigation links (or their expansions), cut to
//! `$select`; single properties and `$value`; the dataArray format; the
//! next page's link. Every link starts with the configured public base URL.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::answer::Page;
use super::fetch::{Body, Fetched};
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
    pub fn render(&self, entity: Entity, row: Fetched, options: &Options) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.render_into(&mut out, entity, row, options);
        out
    }

    /// [`Writer::render`] at the end of `out`.
    pub fn render_into(&self, out: &mut Vec<u8>, entity: Entity, mut row: Fetched, options: &Options) {
        let link = self.self_link(entity, &row.id);
        let selected = |name: &str| options.select.is_empty() || options.select.iter().any(|s| s == name);
        let mut members = Members::open(out);
        if selected("id") || selected("@iot.id") {
            members.value("@iot.id", &row.id);
        }
        // The link once as JSON text, quoted: each navigation link extends it.
        let link = serde_json::to_string(&link).unwrap_or_default();
        if options.select.is_empty() {
            members.raw("@iot.selfLink", link.as_bytes());
        }
        for nav in entity.navigations() {
            if options.expand.iter().any(|e| e.navigation == nav.name) {
                if let Some(at) = row.expanded.iter().position(|(name, _)| *name == nav.name) {
                    let (_, text) = row.expanded.swap_remove(at);
                    members.raw(nav.name, &text);
                }
            } else if selected(nav.name) {
                members.navigation_link(nav.name, &link);
            }
        }
        if options.select.is_empty() {
            members.body(&row.body);
        } else {
            for (key, value) in row.body.members() {
                if selected(&key) {
                    members.value(&key, &value);
                }
            }
        }
        members.close();
    }

    pub fn property(&self, entity: Entity, row: Fetched, property: &str, raw: bool) -> Result<Response, ApiError> {
        let value = if property == "id" {
            row.id.clone()
        } else {
            row.body
                .members()
                .remove(property)
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
            let members = row.body.members();
            let line: Vec<Value> = components
                .iter()
                .map(|c| if c == "id" { row.id.clone() } else { members.get(c).cloned().unwrap_or(Value::Null) })
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
            return Ok(json_response(self.render(target.entity, row, options)));
        }
        let mut out = Vec::with_capacity(4096);
        let mut members = Members::open(&mut out);
        if let Some(count) = page.count {
            members.value("@iot.count", &count);
        }
        if page.more {
            members.value("@iot.nextLink", &self.next_link(target, pairs, options, page.size));
        }
        members.key("value");
        out.push(b'[');
        if options.data_array && !target.reference {
            for (i, group) in self.data_array(page.rows, options).iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut out, group);
            }
        } else {
            for (i, row) in page.rows.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if target.reference {
                    let _ = serde_json::to_writer(
                        &mut out,
                        &json!({"@iot.selfLink": self.self_link(target.entity, &row.id)}),
                    );
                } else {
                    self.render_into(&mut out, target.entity, row, options);
                }
            }
        }
        out.extend_from_slice(b"]}");
        Ok(json_response(out))
    }
}

/// A response of JSON written by hand.
fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The members of one JSON object being written, separated by commas.
struct Members<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Members<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Members { out, first: true }
    }

    /// The comma before a member, unless it is the first.
    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// Writes `"key":`, after a comma unless it is the first member.
    fn key(&mut self, key: &str) {
        self.separate();
        let _ = serde_json::to_writer(&mut *self.out, key);
        self.out.push(b':');
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.key(key);
        // Writing into a vector fails only for a value JSON cannot hold (a map with non-text keys): none here.
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    /// A member whose value is JSON written already.
    fn raw(&mut self, key: &str, json: &[u8]) {
        self.key(key);
        self.out.extend_from_slice(json);
    }

    /// `"{nav}@iot.navigationLink":"{link}/{nav}"`, with `link` already JSON
    /// text and `nav` a name that needs no escaping; written without a
    /// `format!` per link (they were a tenth of an expansion's time).
    fn navigation_link(&mut self, nav: &str, link: &str) {
        self.separate();
        for part in ["\"", nav, "@iot.navigationLink\":", link.strip_suffix('"').unwrap_or(link), "/", nav, "\""] {
            self.out.extend_from_slice(part.as_bytes());
        }
    }

    /// The members of an entity's own properties; an empty body takes its comma back.
    fn body(&mut self, body: &Body) {
        let (mark, first) = (self.out.len(), self.first);
        self.separate();
        if !body.write_members(self.out) {
            self.out.truncate(mark);
            self.first = first;
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::DateTime;
    use serde_json::{json, Value};

    use super::*;

    fn options(entity: Entity, query: &[(&str, &str)]) -> Options {
        let pairs: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Options::from_pairs(entity, &pairs).unwrap()
    }

    fn fetched(id: Value, body: Body, expanded: Vec<(&'static str, Vec<u8>)>) -> Fetched {
        Fetched { id, keys: HashMap::new(), body, expanded, parent: None, entities: 1 }
    }

    fn written(entity: Entity, row: Fetched, options: &Options) -> Value {
        let writer = Writer { base: "https://daten.example/sta/v1.1".into() };
        serde_json::from_slice(&writer.render(entity, row, options)).expect("valid JSON")
    }

    #[test]
    fn an_entity_is_written_with_its_links_body_and_expansions_as_valid_json() {
        let body = Body::Json(r#"{"name" : "Pegel \"Nord\"", "properties" : {"a" : [1, null]}}"#.into());
        let expanded = vec![("Datastreams", br#"[{"@iot.id":7}]"#.to_vec())];
        let got = written(
            Entity::Things,
            fetched(json!(3), body, expanded),
            &options(Entity::Things, &[("$expand", "Datastreams")]),
        );
        assert_eq!(
            got,
            json!({
                "@iot.id": 3,
                "@iot.selfLink": "https://daten.example/sta/v1.1/Things(3)",
                "Datastreams": [{"@iot.id": 7}],
                "Locations@iot.navigationLink": "https://daten.example/sta/v1.1/Things(3)/Locations",
                "HistoricalLocations@iot.navigationLink": "https://daten.example/sta/v1.1/Things(3)/HistoricalLocations",
                "name": "Pegel \"Nord\"",
                "properties": {"a": [1, null]},
            })
        );
    }

    #[test]
    fn an_empty_body_a_selection_and_an_observation_stay_valid_json() {
        let empty = written(
            Entity::HistoricalLocations,
            fetched(json!(1), Body::Json("{}".into()), vec![]),
            &options(Entity::HistoricalLocations, &[]),
        );
        assert_eq!(empty["@iot.id"], 1);
        assert_eq!(empty.as_object().unwrap().len(), 4, "id, self link and two navigation links: {empty}");

        let selected = written(
            Entity::Things,
            fetched(json!(2), Body::Json(r#"{"name" : "x", "description" : "y"}"#.into()), vec![]),
            &options(Entity::Things, &[("$select", "name")]),
        );
        assert_eq!(selected, json!({"name": "x"}));

        let time = DateTime::from_timestamp_micros(1_796_059_708_106_745).unwrap();
        let observation = written(
            Entity::Observations,
            fetched(json!("5-1796059708106745"), Body::Observation { time, result: 1e-7 }, vec![]),
            &options(Entity::Observations, &[]),
        );
        assert_eq!(observation["@iot.selfLink"], "https://daten.example/sta/v1.1/Observations('5-1796059708106745')");
        assert_eq!(observation["phenomenonTime"], "2026-11-30T17:28:28.106745Z");
        assert_eq!(observation["resultTime"], observation["phenomenonTime"]);
        assert_eq!(observation["result"], 1e-7);
    }
}
