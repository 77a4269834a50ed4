//! SensorThings query options: `$filter`, `$expand` (nested, with options),
//! `$select`, `$orderby`, `$top`, `$skip`, `$count`, `$resultFormat`.

use super::expr::{self, Expr, OrderItem};
use super::model::Entity;
use super::sql;

/// The default page size, and the largest page served: a larger `$top` is
/// served in pages of this size with `@iot.nextLink` (server-driven paging,
/// as FROST-Server's default). It bounds the memory of one response.
pub const DEFAULT_TOP: i64 = 100;
pub const MAX_TOP: i64 = 1_000;
/// The largest `$skip` (nextLinks of any stored history stay below it).
const MAX_SKIP: i64 = 1_000_000_000_000;
/// The deepest `$expand` nesting. Three reach from any entity to the
/// readings of its context (`Locations` → `Things` → `Datastreams` →
/// `Observations`); a deeper chain only walks back into entity types already
/// expanded (`Datastreams/Thing/Datastreams/Thing`), while every level
/// multiplies the response.
pub const MAX_EXPAND_DEPTH: usize = 3;
/// The most entities one response holds, counted where they are written: an
/// expanded entity under each of 100 parents counts 100 times. Expansion
/// copies children into every parent, so without this bound `$top` × `$top`
/// × … objects (10⁹ and more) could be asked for by anyone. 10,000 is ten
/// full pages of a plain collection, e.g. 1,000 observations each with its
/// Datastream and FeatureOfInterest, or 100 datastreams with their latest 99
/// readings; it keeps one response to about 10 MB of JSON (an expanded
/// datastream writes ~1 KB). A larger request is served in smaller pages
/// (server-driven paging) as long as one entity with its expansion fits,
/// and refused with the limit otherwise.
pub const MAX_ENTITIES: u64 = 10_000;

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

    /// The most entities one `entity` with these options can write: itself
    /// and, for each `$expand`, the most children (1 for a single
    /// navigation, else the level's `$top`) times what each of them can write.
    pub fn entities_per_item(&self, entity: Entity) -> u64 {
        let mut total: u64 = 1;
        for expand in &self.expand {
            let Some(nav) = entity.navigation(&expand.navigation) else { continue };
            let children = if nav.single { 1 } else { expand.options.top().max(0) as u64 };
            total = total.saturating_add(children.saturating_mul(expand.options.entities_per_item(nav.target)));
        }
        total
    }

    /// How many entities of `entity` one page may hold, at most `top`, so
    /// that the page stays within [`MAX_ENTITIES`] however many children the
    /// data has; an error naming the limit if not even one entity fits.
    pub fn page_size(&self, entity: Entity, top: i64) -> Result<i64, String> {
        let per_item = self.entities_per_item(entity);
        if per_item > MAX_ENTITIES {
            return Err(format!(
                "this $expand can write up to {per_item} entities for each of the {}; a response holds at most \
                 {MAX_ENTITIES} entities: lower $top inside $expand (e.g. Observations($top=10)) or expand fewer levels",
                entity.plural()
            ));
        }
        Ok(top.min((MAX_ENTITIES / per_item) as i64))
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
            // Translated here already, so that errors (and expressions too
            // costly to run) are refused before any query of the request runs.
            "$filter" => {
                let filter = expr::parse_filter(value).map_err(|e| format!("$filter: {e}"))?;
                sql::check_filter(entity, &filter).map_err(|e| format!("$filter: {e}"))?;
                self.filter = Some(filter);
            }
            "$orderby" => {
                let orderby = expr::parse_orderby(value).map_err(|e| format!("$orderby: {e}"))?;
                sql::check_order(entity, &orderby).map_err(|e| format!("$orderby: {e}"))?;
                self.orderby = orderby;
            }
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
    fn expansion_is_bounded_in_depth_and_entities() {
        let options = |expand: &str| Options::from_pairs(Entity::Things, &pairs(&[("$expand", expand)]));
        assert!(options("Datastreams/Observations/FeatureOfInterest").is_ok());
        assert!(options("Datastreams/Thing/Datastreams/Thing").unwrap_err().contains("at most 3 levels"));
        assert!(options("Datastreams($expand=Thing($expand=Datastreams($expand=Thing)))")
            .unwrap_err()
            .contains("at most 3 levels"));

        // Things, each with up to 100 datastreams and their latest reading: 1 + 100 × 2.
        let latest = options("Datastreams($expand=Observations($top=1)),Locations($top=1)").unwrap();
        assert_eq!(latest.entities_per_item(Entity::Things), 1 + 100 * 2 + 1);
        assert_eq!(latest.page_size(Entity::Things, 100), Ok(49), "served in pages of 49");
        // Single navigations bring one each.
        let o = Options::from_pairs(Entity::Observations, &pairs(&[("$expand", "Datastream/Thing,FeatureOfInterest")]))
            .unwrap();
        assert_eq!(o.entities_per_item(Entity::Observations), 4);
        assert_eq!(o.page_size(Entity::Observations, 1_000), Ok(1_000));
        // 1,000 datastreams of 1,000 readings each with its datastream, per thing.
        let worst =
            options("Datastreams($top=1000;$expand=Observations($top=1000;$expand=Datastream)),Locations($top=1000)")
                .unwrap();
        assert_eq!(worst.entities_per_item(Entity::Things), 1 + 1_000 * (1 + 1_000 * 2) + 1_000);
        let error = worst.page_size(Entity::Things, 1_000).unwrap_err();
        assert!(error.contains("at most 10000 entities"), "{error}");
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
        // Expressions are translated while the options are read, inside $expand too.
        assert!(err(&[("$filter", "name eq 3")]).contains("cannot compare"));
        assert!(err(&[("$expand", "Datastreams($filter=colour eq 'red')")]).contains("no property `colour`"));
    }
}
