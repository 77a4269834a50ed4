//! How FROST's clients write paths in `$filter`, made plain OData before
//! translation (pure, over the entity model):
//!
//! - a condition on a path through a collection (`Things?$filter=
//!   Datastreams/ObservedProperty/name eq 'no2'`) holds if it holds for any
//!   related entity, as FROST-Server reads it: it becomes the lambda
//!   `Datastreams/any(#1: #1/ObservedProperty/name eq 'no2')`, the smallest
//!   condition around the path (a comparison, a function) inside the `any`;
//! - `@iot.id` names the id (`Datastream/@iot.id eq 5`);
//! - a path may start with the entity's own type, as Masterportal writes it
//!   (`startswith(Things/name, 'x')` on Things, `Thing/Locations/location`
//!   on Things).
//!
//! Lambdas (`any`, `all`) are translated to SQL in `sql.rs`, each related
//! entity read from its base query in the caller's view.

use super::expr::{Expr, Lambda, Quantifier};
use super::model::{Entity, Navigation};

/// `path` with `@iot.id` as `id` and, at the start of a path from the
/// entity itself (`top`), its own type name dropped where it names no
/// property or navigation.
pub fn normalized(entity: Entity, path: &[String], top: bool) -> Vec<String> {
    let own = |name: &str| name == entity.plural() || name == entity.singular();
    let skip = top
        && path.len() > 1
        && own(&path[0])
        && entity.navigation(&path[0]).is_none()
        && entity.property(&path[0]).is_none();
    path.iter().skip(usize::from(skip)).map(|s| if s == "@iot.id" { "id".to_owned() } else { s.clone() }).collect()
}

/// Refuses a look into observations from another entity's `$filter`: every
/// read of observations is decided, charged and audited by the access gate
/// for the request's own time range, which a condition inside a filter of
/// things or datastreams would bypass.
pub fn check_readable(from: Entity, nav: Navigation) -> Result<(), String> {
    if nav.target == Entity::Observations && !nav.single {
        return Err(format!(
            "a $filter of {} cannot look into their Observations: read them with {}(id)/Observations?$filter=…",
            from.plural(),
            from.plural()
        ));
    }
    Ok(())
}

/// `expr` of `root` with every condition on a path through a collection
/// rewritten as `any` over that collection.
pub fn any_through_collections(root: Entity, expr: &Expr) -> Result<Expr, String> {
    Rewrite { root, variables: Vec::new(), fresh: 0 }.condition(expr)
}

struct Rewrite {
    root: Entity,
    /// The lambda variables in scope and their entity types, innermost last.
    variables: Vec<(String, Entity)>,
    /// The variables introduced so far (`#1`, `#2`, …: no request can name them).
    fresh: usize,
}

impl Rewrite {
    fn condition(&mut self, expr: &Expr) -> Result<Expr, String> {
        Ok(match expr {
            Expr::Binary(op, left, right) if matches!(op, super::expr::BinaryOp::And | super::expr::BinaryOp::Or) => {
                Expr::Binary(*op, Box::new(self.condition(left)?), Box::new(self.condition(right)?))
            }
            Expr::Not(inner) => Expr::Not(Box::new(self.condition(inner)?)),
            Expr::Lambda(lambda) => self.lambda(lambda)?,
            atom => self.atom(atom)?,
        })
    }

    /// A lambda with its condition rewritten, its variable in scope.
    fn lambda(&mut self, lambda: &Lambda) -> Result<Expr, String> {
        let (Some((variable, body)), Some(target)) = (&lambda.predicate, self.collection(&lambda.collection)) else {
            // Nothing to rewrite, or an error the translation explains.
            return Ok(Expr::Lambda(lambda.clone()));
        };
        self.variables.push((variable.clone(), target));
        let body = self.condition(body);
        self.variables.pop();
        Ok(Expr::Lambda(Lambda {
            collection: lambda.collection.clone(),
            quantifier: lambda.quantifier,
            predicate: Some((variable.clone(), Box::new(body?))),
        }))
    }

    /// A condition that is not `and`/`or`/`not`: if a path in it crosses a
    /// collection, `any` over the first such collection around it.
    fn atom(&mut self, atom: &Expr) -> Result<Expr, String> {
        let atom = self.normalize(atom);
        let Some(prefix) = self.first_collection(&atom) else { return Ok(atom) };
        self.fresh += 1;
        let variable = format!("#{}", self.fresh);
        let body = replace_prefix(&atom, &prefix, &variable);
        self.lambda(&Lambda {
            collection: prefix,
            quantifier: Quantifier::Any,
            predicate: Some((variable, Box::new(body))),
        })
    }

    fn variable(&self, name: &str) -> Option<Entity> {
        self.variables.iter().rev().find(|(n, _)| n == name).map(|(_, entity)| *entity)
    }

    /// Where a path starts: a variable's entity and the rest, or the root and the whole path.
    fn start<'p>(&self, path: &'p [String]) -> (Entity, usize, &'p [String]) {
        match self.variable(&path[0]) {
            Some(entity) => (entity, 1, &path[1..]),
            None => (self.root, 0, path),
        }
    }

    /// The entity type a lambda's collection path leads to, if it names navigations.
    fn collection(&self, path: &[String]) -> Option<Entity> {
        let (mut entity, _, rest) = self.start(path);
        for name in rest {
            entity = entity.navigation(name)?.target;
        }
        Some(entity)
    }

    /// Every path of `expr` normalized (see [`normalized`]).
    fn normalize(&self, expr: &Expr) -> Expr {
        map_paths(expr, &mut |path| {
            let (entity, skip, rest) = self.start(path);
            let mut out = path[..skip].to_vec();
            out.extend(normalized(entity, rest, skip == 0));
            out
        })
    }

    /// The first path of `expr` that continues past a collection: its
    /// start up to and including that collection.
    fn first_collection(&self, expr: &Expr) -> Option<Vec<String>> {
        let mut found = None;
        visit_paths(expr, &mut |path| {
            if found.is_some() {
                return;
            }
            let (mut entity, skip, rest) = self.start(path);
            for (i, name) in rest.iter().enumerate() {
                let Some(nav) = entity.navigation(name) else { return };
                if !nav.single && i + 1 < rest.len() {
                    found = Some(path[..skip + i + 1].to_vec());
                    return;
                }
                entity = nav.target;
            }
        });
        found
    }
}

/// `expr` with each path that starts with `prefix` (and continues) starting at `variable` instead.
fn replace_prefix(expr: &Expr, prefix: &[String], variable: &str) -> Expr {
    map_paths(expr, &mut |path| {
        if path.len() > prefix.len() && path.starts_with(prefix) {
            let mut out = vec![variable.to_owned()];
            out.extend_from_slice(&path[prefix.len()..]);
            out
        } else {
            path.to_vec()
        }
    })
}

/// `expr` with each path (outside lambdas) replaced by `f(path)`.
fn map_paths(expr: &Expr, f: &mut impl FnMut(&[String]) -> Vec<String>) -> Expr {
    match expr {
        Expr::Path(path) => Expr::Path(f(path)),
        Expr::Not(inner) => Expr::Not(Box::new(map_paths(inner, f))),
        Expr::Negate(inner) => Expr::Negate(Box::new(map_paths(inner, f))),
        Expr::Binary(op, left, right) => Expr::Binary(*op, Box::new(map_paths(left, f)), Box::new(map_paths(right, f))),
        Expr::Call(name, args) => Expr::Call(name.clone(), args.iter().map(|a| map_paths(a, f)).collect()),
        other => other.clone(),
    }
}

/// Calls `f` with each path of `expr` (outside lambdas), left to right.
fn visit_paths(expr: &Expr, f: &mut impl FnMut(&[String])) {
    match expr {
        Expr::Path(path) => f(path),
        Expr::Not(inner) | Expr::Negate(inner) => visit_paths(inner, f),
        Expr::Binary(_, left, right) => {
            visit_paths(left, f);
            visit_paths(right, f);
        }
        Expr::Call(_, args) => args.iter().for_each(|a| visit_paths(a, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::expr::parse_filter;
    use super::*;

    fn rewritten(entity: Entity, filter: &str) -> Expr {
        any_through_collections(entity, &parse_filter(filter).unwrap()).unwrap()
    }

    /// `collection/any(variable: body)`, `$` in `body` standing for the variable.
    fn any(collection: &str, variable: &str, body: &str) -> Expr {
        let body = parse_filter(&body.replace('$', "v")).unwrap();
        Expr::Lambda(Lambda {
            collection: collection.split('/').map(str::to_owned).collect(),
            quantifier: Quantifier::Any,
            predicate: Some((variable.to_owned(), Box::new(rename(&body, "v", variable)))),
        })
    }

    fn rename(expr: &Expr, from: &str, to: &str) -> Expr {
        map_paths(expr, &mut |p| {
            let mut out = p.to_vec();
            if out[0] == from {
                out[0] = to.to_owned();
            }
            out
        })
    }

    #[test]
    fn a_condition_through_a_collection_is_any_related_entity() {
        assert_eq!(
            rewritten(Entity::Things, "Datastreams/ObservedProperty/name eq 'no2'"),
            any("Datastreams", "#1", "$/ObservedProperty/name eq 'no2'")
        );
        // Only the smallest condition around the path: `and` keeps its sides apart.
        let Expr::Binary(_, left, right) = rewritten(Entity::Things, "Datastreams/name eq 'a' and name eq 'b'") else {
            panic!("and")
        };
        assert_eq!(*left, any("Datastreams", "#1", "$/name eq 'a'"));
        assert_eq!(*right, parse_filter("name eq 'b'").unwrap());
        // Paths through the same collection in one condition share the related entity.
        assert_eq!(
            rewritten(Entity::Things, "concat(Datastreams/name, Datastreams/description) eq 'x'"),
            any("Datastreams", "#1", "concat($/name, $/description) eq 'x'")
        );
    }

    #[test]
    fn collections_inside_collections_and_lambdas_nest() {
        let Expr::Lambda(outer) = rewritten(Entity::Locations, "Things/Datastreams/name eq 'x'") else {
            panic!("lambda")
        };
        assert_eq!(outer.collection, vec!["Things"]);
        let (variable, body) = outer.predicate.unwrap();
        assert_eq!(*body, any(&format!("{variable}/Datastreams"), "#2", "$/name eq 'x'"));
        // Inside an explicit lambda, its variable's paths are rewritten too.
        let Expr::Lambda(explicit) = rewritten(Entity::Locations, "Things/all(t: t/Datastreams/name eq 'x')") else {
            panic!("lambda")
        };
        assert_eq!(explicit.quantifier, Quantifier::All);
        assert_eq!(*explicit.predicate.unwrap().1, any("t/Datastreams", "#1", "$/name eq 'x'"));
    }

    #[test]
    fn ids_and_the_own_type_name_are_read_as_frost_reads_them() {
        assert_eq!(rewritten(Entity::Datastreams, "Thing/@iot.id eq 5"), parse_filter("Thing/id eq 5").unwrap());
        assert_eq!(
            rewritten(Entity::Things, "startswith(Things/name, 'x')"),
            parse_filter("startswith(name, 'x')").unwrap()
        );
        assert_eq!(
            rewritten(Entity::Things, "st_within(Thing/Locations/location, geography'POINT(1 2)')"),
            any("Locations", "#1", "st_within($/location, geography'POINT(1 2)')")
        );
        // A navigation of that name wins: `Thing` of a datastream is its thing.
        assert_eq!(rewritten(Entity::Datastreams, "Thing/name eq 'x'"), parse_filter("Thing/name eq 'x'").unwrap());
    }
}
