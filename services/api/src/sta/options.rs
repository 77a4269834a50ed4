//! SensorThings query options: `$filter`, `$expand` (nested, with options),
//! `$select`, `$orderby`, `$top`, `$skip`, `$count`, `$resultFormat`.

use super::expr::{self, Expr, OrderItem};
use super::model::Entity;

/// The default page size, and the largest page served: a larger `$top` is
/// served in pages of this size with `@iot.nextLink` (server-driven paging,
/// as FROST-Server's default). It bounds the memory of one response.
pub const DEFAULT_TOP: i64 = 100;
pub const MAX_TOP: i64 = 1_000;
/// The largest `$skip` (nextLinks of any stored history stay below it).
const MAX_SKIP: i64 = 1_000_000_000_000;
/// The deepest `$expand` nesting.
const MAX_EXPAND_DEPTH: usize = 4;

/// The options of one level: the request's, or those inside `$expand=X(…)`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub filter: Option<Expr>,
    pub orderby: Vec<OrderItem>,
    pub top: Option<i64>,
    pub skip: i64,
    pub count: bool,
    /// Selected properties (empty: all).
    pub select: Vec<String>,
    pub expand: Vec<Expand>,
    /// `$resultFormat=dataArray`.
    pub data_array: bool,
}

#[derive(Debug, Clone)]
pub struct Expand {
    pub navigation: String,
    pub options: Options,
}

impl Options {
    pub fn top(&self) -> i64 {
        self.top.unwrap_or(DEFAULT_TOP)
    }

    /// Parses the raw (percent-decoded) pairs of a request's query string.
    pub fn from_pairs(entity: Entity, pairs: &[(String, String)]) -> Result<Self, String> {
        let mut options = Options::default();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in pairs {
            if !seen.insert(key.as_str()) {
                return Err(format!("{key} is given twice"));
            }
            options.set(entity, key, value, 0)?;
        }
        Ok(options)
    }

    fn set(&mut self, entity: Entity, key: &str, value: &str, depth: usize) -> Result<(), String> {
        match key {
            "$filter" => self.filter = Some(expr::parse_filter(value).map_err(|e| format!("$filter: {e}"))?),
            "$orderby" => self.orderby = expr::parse_orderby(value).map_err(|e| format!("$orderby: {e}"))?,
            "$top" => {
                let top: i64 =
                    value.trim().parse().map_err(|_| format!("$top must be a whole number, not `{value}`"))?;
                if top < 0 {
                    return Err("$top must be 0 or more".into());
                }
                self.top = Some(top.min(MAX_TOP));
            }
            "$skip" => {
                let skip: i64 =
                    value.trim().parse().map_err(|_| format!("$skip must be a whole number, not `{value}`"))?;
                if !(0..=MAX_SKIP).contains(&skip) {
                    return Err(format!("$skip must be between 0 and {MAX_SKIP}"));
                }
                self.skip = skip;
            }
            "$count" => {
                self.count = match value.trim() {
                    "true" => true,
                    "false" => false,
                    other => return Err(format!("$count is true or false, not `{other}`")),
                }
            }
            "$select" => {
                self.select = split_top_level(value, ',')?.into_iter().map(|s| s.trim().to_owned()).collect();
                for name in &self.select {
                    let known = name == "id"
                        || name == "@iot.id"
                        || entity.property(name).is_some()
                        || entity.properties().iter().any(|(n, _, _)| n.split('/').next() == Some(name.as_str()))
                        || entity.navigation(name).is_some();
                    if !known {
                        return Err(format!("$select: {} has no property `{name}`", entity.plural()));
                    }
                }
            }
            "$expand" => {
                for item in split_top_level(value, ',')? {
                    self.expand_item(entity, item.trim(), depth)?;
                }
            }
            "$resultFormat" => {
                if value != "dataArray" {
                    return Err(format!("$resultFormat supports only dataArray, not `{value}`"));
                }
                if entity != Entity::Observations {
                    return Err("$resultFormat=dataArray applies to Observations".into());
                }
                self.data_array = true;
            }
            other if other.starts_with('$') => return Err(format!("unknown query option `{other}`")),
            // Other parameters are not OData options; SensorThings ignores them.
            _ => {}
        }
        Ok(())
    }

    /// `Nav`, `Nav(opts)` or `Nav/Nav2(opts)`: adds to `self.expand`.
    fn expand_item(&mut self, entity: Entity, item: &str, depth: usize) -> Result<(), String> {
        if depth >= MAX_EXPAND_DEPTH {
            return Err(format!("$expand nests at most {MAX_EXPAND_DEPTH} levels"));
        }
        let (head, rest_path, inner) = match item.find(['(', '/']) {
            None => (item, None, None),
            Some(i) if item.as_bytes()[i] == b'/' => (&item[..i], Some(&item[i + 1..]), None),
            Some(i) => {
                let inner = item[i + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| format!("$expand: `{item}` does not close its options"))?;
                (&item[..i], None, Some(inner))
            }
        };
        let navigation = entity.navigation(head).ok_or_else(|| {
            let names: Vec<&str> = entity.navigations().iter().map(|n| n.name).collect();
            format!("$expand: {} has no navigation `{head}`; it has {}", entity.plural(), names.join(", "))
        })?;
        let position = match self.expand.iter().position(|e| e.navigation == head) {
            Some(p) => p,
            None => {
                self.expand.push(Expand { navigation: head.to_owned(), options: Options::default() });
                self.expand.len() - 1
            }
        };
        let options = &mut self.expand[position].options;
        if let Some(rest) = rest_path {
            options.expand_item(navigation.target, rest, depth + 1)?;
        }
        if let Some(inner) = inner {
            for part in split_top_level(inner, ';')? {
                let (key, value) =
                    part.split_once('=').ok_or_else(|| format!("$expand: `{part}` is not an option=value pair"))?;
                options.set(navigation.target, key.trim(), value, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// Splits at `separator` outside parentheses and quotes.
fn split_top_level(text: &str, separator: char) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced `)` in `{text}`"));
                }
            }
            c if c == separator && !quoted && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return Err(format!("unbalanced parentheses or quotes in `{text}`"));
    }
    parts.push(&text[start..]);
    Ok(parts.into_iter().filter(|p| !p.trim().is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn nested_expand_with_options_and_paths() {
        let o = Options::from_pairs(
            Entity::Things,
            &pairs(&[(
                "$expand",
                "Datastreams($select=name,unitOfMeasurement;$top=2;$expand=Observations($top=1;$orderby=phenomenonTime desc)),Locations,Datastreams/ObservedProperty",
            )]),
        )
        .unwrap();
        assert_eq!(o.expand.len(), 2);
        let ds = &o.expand[0].options;
        assert_eq!(ds.top, Some(2));
        assert_eq!(ds.select, vec!["name", "unitOfMeasurement"]);
        assert_eq!(ds.expand.len(), 2, "Observations and ObservedProperty");
        assert_eq!(ds.expand[0].options.top, Some(1));
        assert!(ds.expand[0].options.orderby[0].descending);
    }

    #[test]
    fn a_top_above_the_page_size_is_served_in_pages() {
        let o = Options::from_pairs(Entity::Observations, &pairs(&[("$top", "5000")])).unwrap();
        assert_eq!(o.top(), MAX_TOP);
        assert_eq!(Options::default().top(), DEFAULT_TOP);
    }

    #[test]
    fn bad_options_are_explained() {
        let err = |list: &[(&str, &str)]| Options::from_pairs(Entity::Things, &pairs(list)).unwrap_err();
        assert!(err(&[("$top", "-1")]).contains("0 or more"));
        assert!(err(&[("$top", "ten")]).contains("whole number"));
        assert!(err(&[("$expand", "Observations")]).contains("no navigation"));
        assert!(err(&[("$select", "colour")]).contains("no property"));
        assert!(err(&[("$frobnicate", "1")]).contains("unknown query option"));
        assert!(err(&[("$expand", "Datastreams($top=1")]).contains("unbalanced"));
        assert!(err(&[("$resultFormat", "dataArray")]).contains("Observations"));
    }
}
