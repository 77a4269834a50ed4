//! `$filter` and `$orderby` expressions as SQL over an entity's base query.
//! Every literal is a bound parameter; property names come only from the
//! entity model, never from the request text.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::expr::{BinaryOp, Expr, Geometry, Lambda, OrderItem, Quantifier};
use super::lambda;
use super::model::{Entity, Navigation, Scope, Ty};
pub use crate::access::Reach;

pub type Sql = QueryBuilder<'static, Postgres>;

/// The most navigation steps (`Datastream/…`, `Datastream/Thing/…` is two)
/// in one `$filter`, and in one `$orderby`. Each step is a correlated
/// subquery over the caller's view, run for every candidate row: a filter
/// with 40 steps took 5 s on a few thousand readings and grows with the data.
/// Six allow three two-step paths (a thing's name, a property's name, an
/// organisation) in one filter.
pub const MAX_NAVIGATIONS: usize = 6;

/// What limits every base query to the caller's view, as the access gate decided it.
pub struct View {
    /// Datastreams whose metadata the caller may see.
    pub datastreams: Reach,
    /// Datastreams whose raw readings the caller may read (for the range of this request).
    pub readable: Reach,
}

impl View {
    /// A view of the datastreams `ids`, readable or not (tests and option checks).
    pub fn of_ids(datastreams: Vec<i64>, readable: Vec<i64>) -> Self {
        View { datastreams: Reach::Ids(datastreams), readable: Reach::Ids(readable) }
    }
}

/// Appends `(<base of entity>) alias`, its `{scope}` replaced by the view's predicate.
pub fn push_base(sql: &mut Sql, entity: Entity, view: &View, alias: &str) {
    let (text, scope, datastream) = entity.base();
    let reach = match scope {
        Scope::Datastreams => &view.datastreams,
        Scope::ReadableDatastreams => &view.readable,
    };
    let (before, after) = text.split_once("{scope}").expect("every base query has one {scope}");
    sql.push("(").push(before);
    push_reach(sql, reach, datastream);
    sql.push(after).push(") ").push(alias);
}

/// The predicate over the datastreams aliased `d` that holds for those `reach` names:
/// `true`, their ids bound as one array, or their datasets and organisations (a few ids
/// each, however many datastreams they hold).
fn push_reach(sql: &mut Sql, reach: &Reach, d: &str) {
    match reach {
        Reach::All => {
            sql.push("true");
        }
        Reach::Ids(ids) => {
            sql.push(format!("{d}.id = ANY(")).push_bind(ids.clone()).push("::bigint[])");
        }
        Reach::Of { datasets, orgs } if datasets.is_empty() && orgs.is_empty() => {
            sql.push("false");
        }
        Reach::Of { datasets, orgs } => {
            sql.push(format!("({d}.dataset_id = ANY(")).push_bind(datasets.clone()).push("::bigint[])");
            if !orgs.is_empty() {
                sql.push(format!(" OR ({d}.dataset_id IS NULL AND {d}.thing_id IN (SELECT vt.id FROM things vt WHERE vt.org_id = ANY("))
                    .push_bind(orgs.clone())
                    .push("::bigint[])))");
            }
            sql.push(")");
        }
    }
}

/// The type of a translated expression; `Null` for the literal null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ty(Ty),
    Null,
}

/// Translates expressions of one entity type, aliased `alias` (`e`, `e1`, …).
pub struct Translator<'v> {
    pub view: &'v View,
}

/// Where an expression is translated: the entity it is about (`$it`,
/// aliased `e`), the lambda variables in scope, and the nesting of
/// subqueries (each level's alias is `e{depth}`).
#[derive(Clone)]
struct Env {
    entity: Entity,
    /// The lambda variables in scope, innermost last: name, entity type, alias.
    variables: Vec<(String, Entity, String)>,
    depth: usize,
}

impl Env {
    fn of(entity: Entity) -> Self {
        Env { entity, variables: Vec::new(), depth: 0 }
    }

    fn variable(&self, name: &str) -> Option<(Entity, String)> {
        self.variables.iter().rev().find(|(n, _, _)| n == name).map(|(_, entity, alias)| (*entity, alias.clone()))
    }
}

/// A translated sub-expression: SQL pieces in order, literals bound.
enum Piece {
    Text(String),
    Number(f64),
    String(String),
    Time(DateTime<Utc>),
    Bool(bool),
    StringArray(Vec<String>),
    Base(Entity),
}

struct Fragment {
    pieces: Vec<Piece>,
    kind: Kind,
}

impl Fragment {
    fn text(text: impl Into<String>, kind: Kind) -> Self {
        Fragment { pieces: vec![Piece::Text(text.into())], kind }
    }

    fn wrap(mut self, before: &str, after: &str, kind: Kind) -> Self {
        self.pieces.insert(0, Piece::Text(before.into()));
        self.pieces.push(Piece::Text(after.into()));
        self.kind = kind;
        self
    }
}

fn join(parts: Vec<Fragment>, open: &str, separator: &str, close: &str, kind: Kind) -> Fragment {
    let mut pieces = vec![Piece::Text(open.into())];
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            pieces.push(Piece::Text(separator.into()));
        }
        pieces.extend(part.pieces);
    }
    pieces.push(Piece::Text(close.into()));
    Fragment { pieces, kind }
}

fn ty_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Null => "null",
        Kind::Ty(Ty::Number) => "a number",
        Kind::Ty(Ty::Text) => "a string",
        Kind::Ty(Ty::Time) => "a date-time",
        Kind::Ty(Ty::Bool) => "a boolean",
        Kind::Ty(Ty::Point) => "a geometry",
        Kind::Ty(Ty::Object) => "an object",
    }
}

impl Translator<'_> {
    /// Appends `expr` (a boolean condition) for `entity` aliased `e`.
    pub fn push_filter(&self, sql: &mut Sql, entity: Entity, expr: &Expr) -> Result<(), String> {
        let expr = lambda::any_through_collections(entity, expr)?;
        let fragment = self.translate(&Env::of(entity), &expr)?;
        if fragment.kind != Kind::Ty(Ty::Bool) {
            return Err(format!("$filter must be a condition (true or false), not {}", ty_name(fragment.kind)));
        }
        check_navigations(navigations(&fragment))?;
        self.emit(sql, fragment);
        Ok(())
    }

    /// Appends `ORDER BY`-items (without the keyword), then the entity's tie-breaker.
    pub fn push_order(&self, sql: &mut Sql, entity: Entity, items: &[OrderItem]) -> Result<(), String> {
        let mut fragments = Vec::with_capacity(items.len());
        for item in items {
            let fragment = self.translate(&Env::of(entity), &item.expr)?;
            if matches!(fragment.kind, Kind::Ty(Ty::Object | Ty::Point)) {
                return Err("$orderby: objects and geometries cannot be ordered".into());
            }
            fragments.push((fragment, item.descending));
        }
        check_navigations(fragments.iter().map(|(f, _)| navigations(f)).sum())?;
        for (fragment, descending) in fragments {
            self.emit(sql, fragment);
            sql.push(if descending { " DESC, " } else { " ASC, " });
        }
        sql.push(entity.default_order());
        Ok(())
    }

    fn emit(&self, sql: &mut Sql, fragment: Fragment) {
        for piece in fragment.pieces {
            match piece {
                Piece::Text(text) => {
                    sql.push(text);
                }
                Piece::Number(n) => {
                    sql.push_bind(n).push("::float8");
                }
                Piece::String(s) => {
                    sql.push_bind(s).push("::text");
                }
                Piece::Time(t) => {
                    sql.push_bind(t).push("::timestamptz");
                }
                Piece::Bool(b) => {
                    sql.push_bind(b).push("::boolean");
                }
                Piece::StringArray(a) => {
                    sql.push_bind(a).push("::text[]");
                }
                // The alias follows in a Text piece.
                Piece::Base(entity) => push_base(sql, entity, self.view, ""),
            }
        }
    }

    fn translate(&self, env: &Env, expr: &Expr) -> Result<Fragment, String> {
        Ok(match expr {
            Expr::Null => Fragment { pieces: vec![Piece::Text("NULL".into())], kind: Kind::Null },
            Expr::Bool(b) => Fragment { pieces: vec![Piece::Bool(*b)], kind: Kind::Ty(Ty::Bool) },
            Expr::Number(n) => Fragment { pieces: vec![Piece::Number(*n)], kind: Kind::Ty(Ty::Number) },
            Expr::String(s) => Fragment { pieces: vec![Piece::String(s.clone())], kind: Kind::Ty(Ty::Text) },
            Expr::Time(t) => Fragment { pieces: vec![Piece::Time(*t)], kind: Kind::Ty(Ty::Time) },
            Expr::Geography(g) => geometry(g),
            Expr::Path(path) => self.path(env, path)?,
            Expr::Lambda(lambda) => self.lambda(env, lambda)?,
            Expr::Not(inner) => {
                let inner = self.translate(env, inner)?;
                if inner.kind != Kind::Ty(Ty::Bool) {
                    return Err(format!("`not` needs a condition, not {}", ty_name(inner.kind)));
                }
                inner.wrap("(NOT coalesce(", ", false))", Kind::Ty(Ty::Bool))
            }
            Expr::Negate(inner) => {
                let inner = self.translate(env, inner)?;
                if inner.kind != Kind::Ty(Ty::Number) {
                    return Err(format!("`-` needs a number, not {}", ty_name(inner.kind)));
                }
                inner.wrap("(-", ")", Kind::Ty(Ty::Number))
            }
            Expr::Binary(op, left, right) => self.binary(env, *op, left, right)?,
            Expr::Call(name, args) => self.call(env, name, args)?,
        })
    }

    fn binary(&self, env: &Env, op: BinaryOp, left: &Expr, right: &Expr) -> Result<Fragment, String> {
        let mut l = self.translate(env, left)?;
        let mut r = self.translate(env, right)?;
        match op {
            BinaryOp::And | BinaryOp::Or => {
                for side in [&l, &r] {
                    if side.kind != Kind::Ty(Ty::Bool) {
                        return Err(format!("`{op:?}` joins conditions, not {}", ty_name(side.kind)).to_lowercase());
                    }
                }
                let word = if op == BinaryOp::And { " AND " } else { " OR " };
                Ok(join(vec![l, r], "(", word, ")", Kind::Ty(Ty::Bool)))
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                for side in [&l, &r] {
                    if side.kind != Kind::Ty(Ty::Number) {
                        return Err(format!("arithmetic needs numbers, not {}", ty_name(side.kind)));
                    }
                }
                let (open, separator, close) = match op {
                    BinaryOp::Add => ("(", " + ", ")"),
                    BinaryOp::Sub => ("(", " - ", ")"),
                    BinaryOp::Mul => ("(", " * ", ")"),
                    // Division by zero gives null (no match), not an error.
                    BinaryOp::Div => ("((", ")::float8 / nullif(", ", 0))"),
                    _ => ("mod((", ")::numeric, nullif(", ", 0)::numeric)"),
                };
                Ok(join(vec![l, r], open, separator, close, Kind::Ty(Ty::Number)))
            }
            _ => {
                // A string literal compared with a date-time is a date-time.
                coerce_time(&mut l, &mut r, left, right)?;
                if l.kind == Kind::Null || r.kind == Kind::Null {
                    let other = if l.kind == Kind::Null { r } else { l };
                    return match op {
                        BinaryOp::Eq => Ok(other.wrap("(", " IS NULL)", Kind::Ty(Ty::Bool))),
                        BinaryOp::Ne => Ok(other.wrap("(", " IS NOT NULL)", Kind::Ty(Ty::Bool))),
                        _ => Err("null can only be compared with eq or ne".into()),
                    };
                }
                if l.kind != r.kind {
                    return Err(format!("cannot compare {} with {}", ty_name(l.kind), ty_name(r.kind)));
                }
                if matches!(l.kind, Kind::Ty(Ty::Object | Ty::Point)) {
                    return Err("objects and geometries cannot be compared; use the geo functions".into());
                }
                let symbol = match op {
                    BinaryOp::Eq => " = ",
                    BinaryOp::Ne => " IS DISTINCT FROM ",
                    BinaryOp::Gt => " > ",
                    BinaryOp::Ge => " >= ",
                    BinaryOp::Lt => " < ",
                    _ => " <= ",
                };
                Ok(join(vec![l, r], "(", symbol, ")", Kind::Ty(Ty::Bool)))
            }
        }
    }

    /// A path from `$it` or from a lambda variable (`d/name`).
    fn path(&self, env: &Env, path: &[String]) -> Result<Fragment, String> {
        if let Some((entity, alias)) = env.variable(&path[0]) {
            if path.len() < 2 {
                return Err(format!("`{}` is an entity; name one of its properties, e.g. {}/id", path[0], path[0]));
            }
            return self.member(entity, &alias, env.depth, &lambda::normalized(entity, &path[1..], false));
        }
        self.member(env.entity, "e", env.depth, &lambda::normalized(env.entity, path, true))
    }

    /// A property of `entity` aliased `alias`, or one reached through its single navigations.
    fn member(&self, entity: Entity, alias: &str, depth: usize, path: &[String]) -> Result<Fragment, String> {
        let full = path.join("/");
        let local = |sql: &str| sql.replace("e.", &format!("{alias}."));
        if let Some((sql, ty)) = entity.property(&full) {
            return Ok(Fragment::text(local(sql), Kind::Ty(ty)));
        }
        if let Some((sql, Ty::Object)) = entity.property(&path[0]) {
            let keys: Vec<String> = path[1..].to_vec();
            return Ok(Fragment {
                pieces: vec![
                    Piece::Text(format!("({} #>> ", local(sql))),
                    Piece::StringArray(keys),
                    Piece::Text(")".into()),
                ],
                kind: Kind::Ty(Ty::Text),
            });
        }
        if let Some((_, Ty::Point)) = entity.property(&path[0]) {
            // The GeoJSON type, which clients filter by (QGIS asks for
            // `location/type eq 'Point' or location/geometry/type eq 'Point'`):
            // Hoheit's positions are points, never wrapped in a Feature.
            return match &path[1..] {
                [member] if member == "type" => Ok(Fragment::text("'Point'::text", Kind::Ty(Ty::Text))),
                [geometry, member] if geometry == "geometry" && member == "type" => {
                    Ok(Fragment::text("NULL::text", Kind::Ty(Ty::Text)))
                }
                _ => Err(format!("`{}` is a point; of its members only `{}/type` can be compared", path[0], path[0])),
            };
        }
        if let Some(nav) = entity.navigation(&path[0]) {
            if !nav.single {
                return Err(format!(
                    "`{}` is a collection; only a $filter can look into one (any related entity, or any(…)/all(…)), \
                     $orderby follows single navigations (such as Thing or Datastream)",
                    path[0]
                ));
            }
            if path.len() < 2 {
                return Err(format!("`{}` is an entity; name one of its properties, e.g. {}/id", path[0], path[0]));
            }
            if depth >= 4 {
                return Err("a $filter path may cross at most four navigations".into());
            }
            let inner_alias = format!("e{}", depth + 1);
            let inner =
                self.member(nav.target, &inner_alias, depth + 1, &lambda::normalized(nav.target, &path[1..], false))?;
            let mut pieces = vec![Piece::Text("(SELECT ".into())];
            pieces.extend(inner.pieces);
            pieces.push(Piece::Text(" FROM ".into()));
            pieces.push(Piece::Base(nav.target));
            pieces.push(Piece::Text(format!(
                "{inner_alias} WHERE {inner_alias}.{} = {alias}.{} LIMIT 1)",
                nav.target_column, nav.source_column
            )));
            return Ok(Fragment { pieces, kind: inner.kind });
        }
        let known: Vec<&str> = entity
            .properties()
            .iter()
            .map(|(n, _, _)| *n)
            .chain(entity.navigations().iter().filter(|n| n.single).map(|n| n.name))
            .collect();
        Err(format!("{} has no property `{full}`; known: {}", entity.plural(), known.join(", ")))
    }

    /// `collection/any(v: condition)` or `collection/all(v: condition)`: an
    /// `EXISTS` over each navigation of the collection's path, the related
    /// entities read from their base query in the caller's view.
    fn lambda(&self, env: &Env, lambda: &Lambda) -> Result<Fragment, String> {
        let (entity, alias, rest) = match env.variable(&lambda.collection[0]) {
            Some((entity, alias)) => (entity, alias, &lambda.collection[1..]),
            None => (env.entity, "e".to_owned(), &lambda.collection[..]),
        };
        let rest = lambda::normalized(entity, rest, alias == "e");
        let mut navigations = Vec::with_capacity(rest.len());
        let mut at = entity;
        for name in &rest {
            let nav = at.navigation(name).ok_or_else(|| {
                let names: Vec<&str> = at.navigations().iter().filter(|n| !n.single).map(|n| n.name).collect();
                format!(
                    "{} has no collection `{name}` for any/all; its collections are {}",
                    at.plural(),
                    names.join(", ")
                )
            })?;
            lambda::check_readable(at, nav)?;
            navigations.push(nav);
            at = nav.target;
        }
        match navigations.last() {
            None => return Err("any/all follow a collection, e.g. Datastreams/any(d: d/name eq 'x')".into()),
            Some(nav) if nav.single => {
                return Err(format!(
                    "`{}` is a single entity; any/all follow a collection (such as Datastreams)",
                    lambda.collection.join("/")
                ))
            }
            Some(_) => {}
        }
        self.quantified(env, &alias, &navigations, lambda)
    }

    /// The quantifier over the first of `navigations` from the entity aliased
    /// `source`, around the rest. A single navigation on the way is `any`
    /// (it has at most one entity); the collections take the lambda's.
    fn quantified(
        &self,
        env: &Env,
        source: &str,
        navigations: &[Navigation],
        lambda: &Lambda,
    ) -> Result<Fragment, String> {
        let nav = navigations[0];
        if env.depth >= 4 {
            return Err("a $filter may nest at most four navigations and lambdas".into());
        }
        let mut inner_env = env.clone();
        inner_env.depth += 1;
        let alias = format!("e{}", inner_env.depth);
        let inner = if navigations.len() > 1 {
            self.quantified(&inner_env, &alias, &navigations[1..], lambda)?
        } else if let Some((variable, body)) = &lambda.predicate {
            inner_env.variables.push((variable.clone(), nav.target, alias.clone()));
            let body = self.translate(&inner_env, body)?;
            if body.kind != Kind::Ty(Ty::Bool) {
                return Err(format!("the condition of any/all must be true or false, not {}", ty_name(body.kind)));
            }
            body
        } else {
            Fragment::text("true", Kind::Ty(Ty::Bool))
        };
        let all = lambda.quantifier == Quantifier::All && !nav.single;
        let mut pieces =
            vec![Piece::Text(if all { "(NOT EXISTS (SELECT 1 FROM " } else { "(EXISTS (SELECT 1 FROM " }.into())];
        pieces.push(Piece::Base(nav.target));
        pieces.push(Piece::Text(format!(
            "{alias} WHERE {alias}.{} = {source}.{} AND {}",
            nav.target_column,
            nav.source_column,
            if all { "NOT coalesce(" } else { "(" }
        )));
        pieces.extend(inner.pieces);
        pieces.push(Piece::Text(if all { ", false)))" } else { ")))" }.into()));
        Ok(Fragment { pieces, kind: Kind::Ty(Ty::Bool) })
    }

    /// A function call: its arguments translated, then its entry in
    /// [`FUNCTIONS`] checks them and renders the SQL.
    fn call(&self, env: &Env, name: &str, args: &[Expr]) -> Result<Fragment, String> {
        let mut fragments = Vec::with_capacity(args.len());
        for arg in args {
            fragments.push(self.translate(env, arg)?);
        }
        let function = function(name, args.len()).ok_or_else(|| format!("unknown function `{name}`"))?;
        function.params.check(name, &fragments)?;
        match function.sql {
            Emit::Template(template, ty) => Ok(render(template, fragments, ty)),
            Emit::Build(build) => build(name, args, fragments),
            Emit::Unsupported(why) => Err(format!("{name} is not supported{why}")),
        }
    }
}

/// One OData function: its name, its parameters, and how it becomes SQL.
struct Function {
    name: &'static str,
    params: Params,
    sql: Emit,
}

/// The parameters of a [`Function`].
enum Params {
    /// As many arguments as types, each of its type (or null).
    Typed(&'static [Ty]),
    /// This many arguments, of any type (the builder looks at them).
    Count(usize),
    /// Not checked: the function is not supported.
    Any,
}

/// Builds a call from the function's name, its argument expressions and their translations.
type Builder = fn(&str, &[Expr], Vec<Fragment>) -> Result<Fragment, String>;

/// How a [`Function`] becomes SQL.
enum Emit {
    /// SQL in which `{0}`, `{1}`, … stand for the arguments, and the type of the result.
    Template(&'static str, Ty),
    /// Built by a function of its own.
    Build(Builder),
    /// An error: the function is not supported, for this reason (after the name).
    Unsupported(&'static str),
}

/// A function of typed parameters that is a SQL template.
const fn template(name: &'static str, params: &'static [Ty], sql: &'static str, result: Ty) -> Function {
    Function { name, params: Params::Typed(params), sql: Emit::Template(sql, result) }
}

/// A function of two arguments built by `build`.
const fn built(name: &'static str, build: Builder) -> Function {
    Function { name, params: Params::Count(2), sql: Emit::Build(build) }
}

/// A function Hoheit does not support, and why.
const fn unsupported(name: &'static str, why: &'static str) -> Function {
    Function { name, params: Params::Any, sql: Emit::Unsupported(why) }
}

const NOT_POINTS: &str = ": Hoheit's locations are points";

/// The OData functions of `$filter` and `$orderby`. A name may have one entry
/// per number of arguments (`substring`); a call with another number is
/// checked against its last entry.
static FUNCTIONS: &[Function] = {
    use Ty::{Bool, Number, Text, Time};
    &[
        template("substringof", &[Text, Text], "(strpos({1}, {0}) > 0)", Bool),
        template("contains", &[Text, Text], "(strpos({0}, {1}) > 0)", Bool),
        template("startswith", &[Text, Text], "starts_with({0}, {1})", Bool),
        template("endswith", &[Text, Text], "starts_with(reverse({0}), reverse({1}))", Bool),
        template("length", &[Text], "length({0})", Number),
        template("indexof", &[Text, Text], "(strpos({0}, {1}) - 1)", Number),
        template("substring", &[Text, Number], "substr({0}, 1 + ({1})::int)", Text),
        template("substring", &[Text, Number, Number], "substr({0}, 1 + ({1})::int, greatest(({2})::int, 0))", Text),
        template("tolower", &[Text], "lower({0})", Text),
        template("toupper", &[Text], "upper({0})", Text),
        template("trim", &[Text], "btrim({0})", Text),
        template("concat", &[Text, Text], "({0} || {1})", Text),
        template("year", &[Time], "floor(extract(year FROM ({0}) AT TIME ZONE 'UTC'))::float8", Number),
        template("month", &[Time], "floor(extract(month FROM ({0}) AT TIME ZONE 'UTC'))::float8", Number),
        template("day", &[Time], "floor(extract(day FROM ({0}) AT TIME ZONE 'UTC'))::float8", Number),
        template("hour", &[Time], "floor(extract(hour FROM ({0}) AT TIME ZONE 'UTC'))::float8", Number),
        template("minute", &[Time], "floor(extract(minute FROM ({0}) AT TIME ZONE 'UTC'))::float8", Number),
        template("second", &[Time], "floor(extract(second FROM ({0}) AT TIME ZONE 'UTC'))::float8", Number),
        template(
            "fractionalseconds",
            &[Time],
            "(extract(microseconds FROM ({0}) AT TIME ZONE 'UTC')::float8 % 1000000) / 1e6",
            Number,
        ),
        // Times are UTC.
        template("totaloffsetminutes", &[Time], "0::float8", Number),
        template("now", &[], "now()", Time),
        template("round", &[Number], "round(({0})::float8)", Number),
        template("floor", &[Number], "floor(({0})::float8)", Number),
        template("ceiling", &[Number], "ceil(({0})::float8)", Number),
        built("geo.distance", distance),
        built("st_distance", distance),
        built("geo.intersects", spatial),
        built("st_intersects", spatial),
        built("st_within", spatial),
        built("st_contains", spatial),
        built("st_equals", spatial),
        built("st_disjoint", spatial),
        unsupported("geo.length", NOT_POINTS),
        unsupported("st_touches", NOT_POINTS),
        unsupported("st_overlaps", NOT_POINTS),
        unsupported("st_crosses", NOT_POINTS),
        unsupported("st_relate", NOT_POINTS),
        unsupported("mindatetime", ""),
        unsupported("maxdatetime", ""),
        unsupported("date", ""),
        unsupported("time", ""),
    ]
};

/// The entry of `name` for `count` arguments, else its last entry.
fn function(name: &str, count: usize) -> Option<&'static Function> {
    let entries = || FUNCTIONS.iter().filter(move |f| f.name == name);
    entries().find(|f| f.params.accepts(count)).or_else(|| entries().next_back())
}

impl Params {
    fn accepts(&self, count: usize) -> bool {
        match self {
            Params::Typed(types) => types.len() == count,
            Params::Count(n) => *n == count,
            Params::Any => true,
        }
    }

    /// The arguments' number and types, or an error that says what `name` takes.
    fn check(&self, name: &str, args: &[Fragment]) -> Result<(), String> {
        match self {
            Params::Typed(types) => check_types(name, args, types),
            Params::Count(count) => check_count(name, args.len(), *count),
            Params::Any => Ok(()),
        }
    }
}

fn check_count(name: &str, got: usize, count: usize) -> Result<(), String> {
    if got == count {
        Ok(())
    } else {
        Err(format!("{name} takes {count} argument(s), got {got}"))
    }
}

/// As many arguments as `types`, each of its type (or null).
fn check_types(name: &str, args: &[Fragment], types: &[Ty]) -> Result<(), String> {
    check_count(name, args.len(), types.len())?;
    for (i, (fragment, ty)) in args.iter().zip(types).enumerate() {
        if fragment.kind != Kind::Ty(*ty) && fragment.kind != Kind::Null {
            return Err(format!(
                "argument {} of {name} must be {}, not {}",
                i + 1,
                ty_name(Kind::Ty(*ty)),
                ty_name(fragment.kind)
            ));
        }
    }
    Ok(())
}

/// `template` with its `{i}` replaced by the pieces of argument `i` (an
/// argument it does not name is left out).
fn render(template: &str, args: Vec<Fragment>, result: Ty) -> Fragment {
    let mut args: Vec<Option<Fragment>> = args.into_iter().map(Some).collect();
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').expect("a template closes its placeholders");
        let index: usize = rest[open + 1..close].parse().expect("a placeholder is an argument's index");
        pieces.push(Piece::Text(rest[..open].into()));
        pieces.extend(args[index].take().expect("a template names each argument once").pieces);
        rest = &rest[close + 1..];
    }
    pieces.push(Piece::Text(rest.into()));
    Fragment { pieces, kind: Kind::Ty(result) }
}

/// `geo.distance` and `st_distance`: between two points only.
fn distance(name: &str, _: &[Expr], a: Vec<Fragment>) -> Result<Fragment, String> {
    check_types(name, &a, &[Ty::Point, Ty::Point]).map_err(|e| format!("{e} (points only)"))?;
    Ok(render("({0} <-> {1})", a, Ty::Number))
}

/// The spatial predicates, between a location and a point or polygon
/// literal: points are compared with `~=`, a point in a polygon with `<@`.
fn spatial(name: &str, args: &[Expr], a: Vec<Fragment>) -> Result<Fragment, String> {
    let boolean = Kind::Ty(Ty::Bool);
    let mut it = a.into_iter();
    let (x, y) = (it.next().expect("2"), it.next().expect("2"));
    let (x_point, y_point) = (x.kind == Kind::Ty(Ty::Point), is_point_literal(&args[1], &y));
    let polygon_second = matches!(&args[1], Expr::Geography(Geometry::Polygon(_)));
    let polygon_first = matches!(&args[0], Expr::Geography(Geometry::Polygon(_)));
    let inside = |point: Fragment, polygon: Fragment| join(vec![point, polygon], "(", " <@ ", ")", boolean);
    let negated = |result: Fragment| if name == "st_disjoint" { result.wrap("(NOT ", ")", boolean) } else { result };
    match name {
        _ if x_point && y_point && name != "st_within" && name != "st_contains" => {
            Ok(negated(join(vec![x, y], "(", " ~= ", ")", boolean)))
        }
        "st_contains" if polygon_first && y.kind == Kind::Ty(Ty::Point) => Ok(inside(y, x)),
        "st_contains" => Err("st_contains(polygon literal, location) is supported".into()),
        _ if x_point && polygon_second => Ok(negated(inside(x, y))),
        _ => Err(format!(
            "{name} is supported between a location and a geography'POINT(…)' or geography'POLYGON((…))' literal"
        )),
    }
}

/// Translates `$filter` of `entity` without a query, so that its errors
/// (types, unknown properties, too many navigations) are reported while the
/// options are read, before any query of the request runs.
pub fn check_filter(entity: Entity, expr: &Expr) -> Result<(), String> {
    let view = View::of_ids(Vec::new(), Vec::new());
    Translator { view: &view }.push_filter(&mut Sql::new(""), entity, expr)
}

/// [`check_filter`] for `$orderby`.
pub fn check_order(entity: Entity, items: &[OrderItem]) -> Result<(), String> {
    let view = View::of_ids(Vec::new(), Vec::new());
    Translator { view: &view }.push_order(&mut Sql::new(""), entity, items)
}

/// The navigation steps of a translated expression: each is one subquery over an entity's base.
fn navigations(fragment: &Fragment) -> usize {
    fragment.pieces.iter().filter(|p| matches!(p, Piece::Base(_))).count()
}

fn check_navigations(steps: usize) -> Result<(), String> {
    if steps > MAX_NAVIGATIONS {
        return Err(format!(
            "the expression crosses {steps} navigations (each `Entity/` in a path is one); at most {MAX_NAVIGATIONS} are accepted"
        ));
    }
    Ok(())
}

fn is_point_literal(expr: &Expr, fragment: &Fragment) -> bool {
    matches!(expr, Expr::Geography(Geometry::Point(..))) || fragment.kind == Kind::Ty(Ty::Point)
}

fn geometry(g: &Geometry) -> Fragment {
    match g {
        Geometry::Point(x, y) => Fragment {
            pieces: vec![
                Piece::Text("point(".into()),
                Piece::Number(*x),
                Piece::Text(", ".into()),
                Piece::Number(*y),
                Piece::Text(")".into()),
            ],
            kind: Kind::Ty(Ty::Point),
        },
        Geometry::Polygon(ring) => {
            let text = ring.iter().map(|(x, y)| format!("({x},{y})")).collect::<Vec<_>>().join(",");
            Fragment {
                pieces: vec![
                    Piece::Text("(".into()),
                    Piece::String(format!("({text})")),
                    Piece::Text("::polygon)".into()),
                ],
                // Only usable as an argument of the geo functions.
                kind: Kind::Ty(Ty::Object),
            }
        }
    }
}

fn coerce_time(l: &mut Fragment, r: &mut Fragment, left: &Expr, right: &Expr) -> Result<(), String> {
    let time = Kind::Ty(Ty::Time);
    if l.kind == time {
        if let Expr::String(s) = right {
            *r = Fragment { pieces: vec![Piece::Time(super::expr::parse_time(s)?)], kind: time };
        }
    }
    if r.kind == time {
        if let Expr::String(s) = left {
            *l = Fragment { pieces: vec![Piece::Time(super::expr::parse_time(s)?)], kind: time };
        }
    }
    Ok(())
}

/// The time range a `$filter` restricts `phenomenonTime`/`resultTime` to, from
/// its top-level `and` conjuncts: (from inclusive, to exclusive).
pub fn time_bounds(expr: &Expr) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut from: Option<DateTime<Utc>> = None;
    let mut to: Option<DateTime<Utc>> = None;
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        let Expr::Binary(op, l, r) = e else { continue };
        if *op == BinaryOp::And {
            stack.push(l);
            stack.push(r);
            continue;
        }
        let time_path =
            |x: &Expr| matches!(x, Expr::Path(p) if p.len() == 1 && (p[0] == "phenomenonTime" || p[0] == "resultTime"));
        let literal = |x: &Expr| match x {
            Expr::Time(t) => Some(*t),
            Expr::String(s) => super::expr::parse_time(s).ok(),
            _ => None,
        };
        // Normalise to `time OP literal`.
        let (op, t) = if time_path(l) {
            match literal(r) {
                Some(t) => (*op, t),
                None => continue,
            }
        } else if time_path(r) {
            match literal(l) {
                Some(t) => (mirror(*op), t),
                None => continue,
            }
        } else {
            continue;
        };
        let tick = Duration::microseconds(1);
        let (low, high) = match op {
            BinaryOp::Ge => (Some(t), None),
            BinaryOp::Gt => (Some(t + tick), None),
            BinaryOp::Lt => (None, Some(t)),
            BinaryOp::Le => (None, Some(t + tick)),
            BinaryOp::Eq => (Some(t), Some(t + tick)),
            _ => (None, None),
        };
        if let Some(low) = low {
            from = Some(from.map_or(low, |f| f.max(low)));
        }
        if let Some(high) = high {
            to = Some(to.map_or(high, |f| f.min(high)));
        }
    }
    (from, to)
}

fn mirror(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::expr::{parse_filter, parse_orderby};
    use super::*;

    fn sql_of(entity: Entity, filter: &str) -> Result<String, String> {
        let view = View::of_ids(vec![1], vec![1]);
        let mut sql = Sql::new("");
        Translator { view: &view }.push_filter(&mut sql, entity, &parse_filter(filter)?)?;
        Ok(sql.sql().to_owned())
    }

    /// `$filter` of `entity` as its exact SQL and bound literals
    /// (`SQL | [binds]`), or `error: …`.
    fn described(entity: Entity, filter: &str) -> String {
        let view = View::of_ids(vec![1], vec![1]);
        let translator = Translator { view: &view };
        let run = || -> Result<String, String> {
            let expr = parse_filter(filter)?;
            let mut sql = Sql::new("");
            translator.push_filter(&mut sql, entity, &expr)?;
            let binds: Vec<String> = translator
                .translate(&Env::of(entity), &lambda::any_through_collections(entity, &expr)?)?
                .pieces
                .iter()
                .filter_map(|piece| match piece {
                    Piece::Text(_) => None,
                    Piece::Number(n) => Some(format!("{n}")),
                    Piece::String(s) => Some(format!("{s:?}")),
                    Piece::Time(t) => Some(t.to_rfc3339()),
                    Piece::Bool(b) => Some(b.to_string()),
                    Piece::StringArray(a) => Some(format!("{a:?}")),
                    Piece::Base(entity) => Some(format!("view of {}", entity.plural())),
                })
                .collect();
            Ok(format!("{} | {}", sql.sql(), binds.join(", ")))
        };
        run().unwrap_or_else(|error| format!("error: {error}"))
    }

    /// Every OData function: the exact SQL and bound literals it emits, and
    /// the errors for a wrong number or type of arguments.
    const FUNCTION_CASES: &[(Entity, &str, &str)] = &[
        (Entity::Things, "substringof('a', name)", "(strpos(e.name, $1::text) > 0) | \"a\""),
        (Entity::Things, "contains(name, 'a')", "(strpos(e.name, $1::text) > 0) | \"a\""),
        (Entity::Things, "startswith(name, 'a')", "starts_with(e.name, $1::text) | \"a\""),
        (Entity::Things, "endswith(name, 'a')", "starts_with(reverse(e.name), reverse($1::text)) | \"a\""),
        (Entity::Things, "length(name) eq 3", "(length(e.name) = $1::float8) | 3"),
        (Entity::Things, "indexof(name, 'a') eq 0", "((strpos(e.name, $1::text) - 1) = $2::float8) | \"a\", 0"),
        (Entity::Things, "substring(name, 1) eq 'x'", "(substr(e.name, 1 + ($1::float8)::int) = $2::text) | 1, \"x\""),
        (Entity::Things, "substring(name, 1, 2) eq 'x'", "(substr(e.name, 1 + ($1::float8)::int, greatest(($2::float8)::int, 0)) = $3::text) | 1, 2, \"x\""),
        (Entity::Things, "tolower(name) eq 'x'", "(lower(e.name) = $1::text) | \"x\""),
        (Entity::Things, "toupper(name) eq 'x'", "(upper(e.name) = $1::text) | \"x\""),
        (Entity::Things, "trim(name) eq 'x'", "(btrim(e.name) = $1::text) | \"x\""),
        (Entity::Things, "concat(name, 'x') eq 'y'", "((e.name || $1::text) = $2::text) | \"x\", \"y\""),
        (Entity::Things, "round(id) eq 1", "(round((e.id)::float8) = $1::float8) | 1"),
        (Entity::Things, "floor(id) eq 1", "(floor((e.id)::float8) = $1::float8) | 1"),
        (Entity::Things, "ceiling(id) eq 1", "(ceil((e.id)::float8) = $1::float8) | 1"),
        (Entity::Things, "length(null) eq 1", "(length(NULL) = $1::float8) | 1"),
        (Entity::Things, "contains(properties/colour, 'red')", "(strpos((e.properties #>> $1::text[]), $2::text) > 0) | [\"colour\"], \"red\""),
        (Entity::Observations, "year(phenomenonTime) eq 2026", "(floor(extract(year FROM (e.time) AT TIME ZONE 'UTC'))::float8 = $1::float8) | 2026"),
        (Entity::Observations, "month(phenomenonTime) eq 11", "(floor(extract(month FROM (e.time) AT TIME ZONE 'UTC'))::float8 = $1::float8) | 11"),
        (Entity::Observations, "day(resultTime) eq 1", "(floor(extract(day FROM (e.time) AT TIME ZONE 'UTC'))::float8 = $1::float8) | 1"),
        (Entity::Observations, "hour(phenomenonTime) eq 1", "(floor(extract(hour FROM (e.time) AT TIME ZONE 'UTC'))::float8 = $1::float8) | 1"),
        (Entity::Observations, "minute(phenomenonTime) eq 1", "(floor(extract(minute FROM (e.time) AT TIME ZONE 'UTC'))::float8 = $1::float8) | 1"),
        (Entity::Observations, "second(phenomenonTime) eq 1", "(floor(extract(second FROM (e.time) AT TIME ZONE 'UTC'))::float8 = $1::float8) | 1"),
        (Entity::Observations, "fractionalseconds(phenomenonTime) eq 0", "((extract(microseconds FROM (e.time) AT TIME ZONE 'UTC')::float8 % 1000000) / 1e6 = $1::float8) | 0"),
        (Entity::Observations, "totaloffsetminutes(phenomenonTime) eq 0", "(0::float8 = $1::float8) | 0"),
        (Entity::Observations, "phenomenonTime lt now()", "(e.time < now()) | "),
        (Entity::Observations, "year(Datastream/Thing/id) eq 1", "error: argument 1 of year must be a date-time, not a number"),
        (Entity::Locations, "geo.distance(location, geography'POINT(1 2)') lt 1", "((e.geo <-> point($1::float8, $2::float8)) < $3::float8) | 1, 2, 1"),
        (Entity::Locations, "st_distance(location, location) lt 1", "((e.geo <-> e.geo) < $1::float8) | 1"),
        (Entity::Locations, "geo.intersects(location, geography'POLYGON((0 0,1 0,1 1,0 0))')", "(e.geo <@ ($1::text::polygon)) | \"((0,0),(1,0),(1,1),(0,0))\""),
        (Entity::Locations, "st_intersects(location, geography'POINT(1 2)')", "(e.geo ~= point($1::float8, $2::float8)) | 1, 2"),
        (Entity::Locations, "st_within(location, geography'POLYGON((0 0,1 0,1 1,0 0))')", "(e.geo <@ ($1::text::polygon)) | \"((0,0),(1,0),(1,1),(0,0))\""),
        (Entity::Locations, "st_disjoint(location, geography'POLYGON((0 0,1 0,1 1,0 0))')", "(NOT (e.geo <@ ($1::text::polygon))) | \"((0,0),(1,0),(1,1),(0,0))\""),
        (Entity::Locations, "st_disjoint(location, geography'POINT(1 2)')", "(NOT (e.geo ~= point($1::float8, $2::float8))) | 1, 2"),
        (Entity::Locations, "st_equals(location, location)", "(e.geo ~= e.geo) | "),
        (Entity::Locations, "st_contains(geography'POLYGON((0 0,1 0,1 1,0 0))', location)", "(e.geo <@ ($1::text::polygon)) | \"((0,0),(1,0),(1,1),(0,0))\""),
        (Entity::Locations, "st_within(location, geography'POINT(1 2)')", "error: st_within is supported between a location and a geography'POINT(…)' or geography'POLYGON((…))' literal"),
        (Entity::Locations, "st_contains(location, geography'POLYGON((0 0,1 0,1 1,0 0))')", "error: st_contains(polygon literal, location) is supported"),
        (Entity::Locations, "st_contains(geography'POLYGON((0 0,1 0,1 1,0 0))', geography'POINT(1 2)')", "(point($1::float8, $2::float8) <@ ($3::text::polygon)) | 1, 2, \"((0,0),(1,0),(1,1),(0,0))\""),
        (Entity::Locations, "geo.intersects(geography'POLYGON((0 0,1 0,1 1,0 0))', location)", "error: geo.intersects is supported between a location and a geography'POINT(…)' or geography'POLYGON((…))' literal"),
        (Entity::Locations, "geo.intersects(location)", "error: geo.intersects takes 2 argument(s), got 1"),
        (Entity::Locations, "geo.intersects(location, location, location)", "error: geo.intersects takes 2 argument(s), got 3"),
        (Entity::Locations, "geo.distance(location) lt 1", "error: geo.distance takes 2 argument(s), got 1"),
        (Entity::Locations, "geo.distance(location, name) lt 1", "error: argument 2 of geo.distance must be a geometry, not a string (points only)"),
        (Entity::Locations, "geo.distance(name, location, location) lt 1", "error: geo.distance takes 2 argument(s), got 3"),
        (Entity::Locations, "geo.length(location) lt 1", "error: geo.length is not supported: Hoheit's locations are points"),
        (Entity::Locations, "st_touches(location, location)", "error: st_touches is not supported: Hoheit's locations are points"),
        (Entity::Locations, "st_overlaps(location)", "error: st_overlaps is not supported: Hoheit's locations are points"),
        (Entity::Locations, "st_crosses(location)", "error: st_crosses is not supported: Hoheit's locations are points"),
        (Entity::Locations, "st_relate(location)", "error: st_relate is not supported: Hoheit's locations are points"),
        (Entity::Observations, "mindatetime() eq phenomenonTime", "error: mindatetime is not supported"),
        (Entity::Observations, "maxdatetime() eq phenomenonTime", "error: maxdatetime is not supported"),
        (Entity::Observations, "date(phenomenonTime) eq 1", "error: date is not supported"),
        (Entity::Observations, "time(phenomenonTime) eq 1", "error: time is not supported"),
        (Entity::Things, "frobnicate(name)", "error: unknown function `frobnicate`"),
        (Entity::Things, "length(name, name) eq 1", "error: length takes 1 argument(s), got 2"),
        (Entity::Things, "length(id) eq 1", "error: argument 1 of length must be a string, not a number"),
        (Entity::Things, "length() eq 1", "error: length takes 1 argument(s), got 0"),
        (Entity::Things, "contains(name, 3)", "error: argument 2 of contains must be a string, not a number"),
        (Entity::Things, "contains(3, name)", "error: argument 1 of contains must be a string, not a number"),
        (Entity::Things, "contains(name)", "error: contains takes 2 argument(s), got 1"),
        (Entity::Things, "substringof(name, 'a', 'b')", "error: substringof takes 2 argument(s), got 3"),
        (Entity::Things, "now(1) eq name", "error: now takes 0 argument(s), got 1"),
        (Entity::Things, "substring(name) eq 'x'", "error: substring takes 3 argument(s), got 1"),
        (Entity::Things, "substring(name, 1, 2, 3) eq 'x'", "error: substring takes 3 argument(s), got 4"),
        (Entity::Things, "substring(name, 'a') eq 'x'", "error: argument 2 of substring must be a number, not a string"),
        (Entity::Things, "substring(name, 1, 'a') eq 'x'", "error: argument 3 of substring must be a number, not a string"),
        (Entity::Things, "tolower(id) eq 'x'", "error: argument 1 of tolower must be a string, not a number"),
        (Entity::Things, "concat(name) eq 'x'", "error: concat takes 2 argument(s), got 1"),
        (Entity::Things, "round(name) eq 1", "error: argument 1 of round must be a number, not a string"),
        (Entity::Things, "round(id, id) eq 1", "error: round takes 1 argument(s), got 2"),
        (Entity::Observations, "year(result) eq 1", "error: argument 1 of year must be a date-time, not a number"),
        (Entity::Observations, "year() eq 1", "error: year takes 1 argument(s), got 0"),
        (Entity::Observations, "totaloffsetminutes(result) eq 0", "error: argument 1 of totaloffsetminutes must be a date-time, not a number"),
        (Entity::Observations, "fractionalseconds(phenomenonTime, phenomenonTime) eq 0", "error: fractionalseconds takes 1 argument(s), got 2"),
        (Entity::Things, "length(colour) eq 1", "error: Things has no property `colour`; known: id, name, description, properties"),
        (Entity::Things, "tolower(name)", "error: $filter must be a condition (true or false), not a string"),
    ];

    #[test]
    fn every_template_names_only_its_own_arguments() {
        for function in FUNCTIONS {
            if let (Params::Typed(types), Emit::Template(template, ty)) = (&function.params, &function.sql) {
                let args = types.iter().map(|ty| Fragment::text("x", Kind::Ty(*ty))).collect();
                let rendered = render(template, args, *ty);
                assert!(rendered.pieces.iter().all(|p| !matches!(p, Piece::Text(t) if t.contains(['{', '}']))));
            }
        }
    }

    #[test]
    fn every_function_emits_exactly_its_sql_or_its_error() {
        for (entity, filter, expected) in FUNCTION_CASES {
            assert_eq!(described(*entity, filter), *expected, "{entity:?}: {filter}");
        }
    }

    #[test]
    fn literals_are_bound_never_inlined() {
        let sql = sql_of(Entity::Things, "name eq 'x'' OR 1=1 --' and id gt 3").unwrap();
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(sql.contains("e.name = $1::text") && sql.contains("e.id > $2::float8"), "{sql}");
    }

    #[test]
    fn navigation_paths_become_correlated_subqueries_in_the_callers_view() {
        let sql = sql_of(Entity::Observations, "Datastream/Thing/name eq 'Pegel'").unwrap();
        assert!(
            sql.contains("FROM (SELECT")
                && sql.contains("e2.id = e1.thing_id")
                && sql.contains("e1.id = e.datastream_id"),
            "{sql}"
        );
        assert!(sql.contains("ANY($1::bigint[])"), "{sql}");
    }

    #[test]
    fn type_errors_are_explained() {
        assert!(sql_of(Entity::Things, "name eq 3").unwrap_err().contains("cannot compare a string with a number"));
        assert!(sql_of(Entity::Things, "name").unwrap_err().contains("must be a condition"));
        assert!(sql_of(Entity::Things, "colour eq 'red'").unwrap_err().contains("no property `colour`"));
        assert!(sql_of(Entity::Datastreams, "Observations/result gt 1").unwrap_err().contains("cannot look into"));
        let order = parse_orderby("Datastreams/name").unwrap();
        assert!(check_order(Entity::Things, &order).unwrap_err().contains("is a collection"));
        assert!(sql_of(Entity::Things, "frobnicate(name)").unwrap_err().contains("unknown function"));
    }

    #[test]
    fn a_condition_through_a_collection_is_an_exists_in_the_callers_view() {
        let sql = sql_of(Entity::Things, "Datastreams/ObservedProperty/name eq 'no2'").unwrap();
        // The datastreams in the caller's view ($1), their property in it ($2), the literal bound ($3).
        assert!(sql.starts_with("(EXISTS (SELECT 1 FROM (SELECT d.id, d.name"), "{sql}");
        assert!(
            sql.contains("WHERE d.id = ANY($1::bigint[])) e1 WHERE e1.thing_id = e.id AND (((SELECT e2.name FROM"),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "HAVING bool_or(d.id = ANY($2::bigint[]))) e2 WHERE e2.id = e1.property_id LIMIT 1) = $3::text))))"
            ),
            "{sql}"
        );
        let explicit = sql_of(Entity::Things, "Datastreams/any(d: d/ObservedProperty/name eq 'no2')").unwrap();
        assert_eq!(explicit, sql, "the same as the lambda it stands for");
    }

    #[test]
    fn lambdas_quantify_over_collections() {
        let all = sql_of(Entity::Things, "Datastreams/all(d: d/unitOfMeasurement/symbol eq 'count')").unwrap();
        assert!(all.starts_with("(NOT EXISTS (SELECT 1 FROM (SELECT d.id"), "{all}");
        assert!(
            all.ends_with("e1 WHERE e1.thing_id = e.id AND NOT coalesce((e1.unit_symbol = $2::text), false)))"),
            "{all}"
        );
        let nonempty = sql_of(Entity::Things, "Datastreams/any()").unwrap();
        assert!(nonempty.ends_with("e1 WHERE e1.thing_id = e.id AND (true)))"), "{nonempty}");
        // Nested, the inner one naming the outer's variable.
        let nested = sql_of(Entity::Locations, "Things/any(t: t/Datastreams/any(d: d/name eq t/name))").unwrap();
        assert!(nested.contains("e2.thing_id = e1.id AND ((e2.name = e1.name))"), "{nested}");
        for (filter, says) in [
            ("Thing/any(t: t/name eq 'x')", "`Thing` is a single entity"),
            ("Datastreams/all()", "needs a condition"),
            ("Datastreams/any(d: d/name)", "must be true or false"),
            ("Datastreams/any(d: d)", "is an entity"),
            ("Frobs/any(f: f/name eq 'x')", "no collection `Frobs`"),
            ("Datastreams/any(d: d/Observations/any(o: o/result gt 1))", "cannot look into their Observations"),
        ] {
            let error = sql_of(if filter.starts_with("Thing/") { Entity::Datastreams } else { Entity::Things }, filter)
                .unwrap_err();
            assert!(error.contains(says), "{filter}: {error}");
        }
    }

    #[test]
    fn ids_and_geojson_types_are_read_as_clients_write_them() {
        assert_eq!(sql_of(Entity::Datastreams, "@iot.id eq 5").unwrap(), "(e.id = $2::float8)".replace("$2", "$1"));
        assert!(sql_of(Entity::Observations, "Datastream/@iot.id eq 5").unwrap().contains("SELECT e1.id FROM"));
        assert_eq!(
            sql_of(Entity::Locations, "location/type eq 'Point' or location/geometry/type eq 'Point'").unwrap(),
            "(('Point'::text = $1::text) OR (NULL::text = $2::text))"
        );
        assert!(sql_of(Entity::Locations, "location/coordinates eq 'x'").unwrap_err().contains("only `location/type`"));
    }

    #[test]
    fn navigations_are_bounded() {
        let paths = |n: usize| vec!["Datastream/Thing/name eq 'x'"; n].join(" or ");
        assert!(sql_of(Entity::Observations, &paths(3)).is_ok());
        let error = sql_of(Entity::Observations, &paths(4)).unwrap_err();
        assert!(error.contains("8 navigations") && error.contains("at most 6"), "{error}");
        let order =
            parse_orderby("Datastream/Thing/name, Datastream/Thing/id, Datastream/Thing/description, Datastream/name")
                .unwrap();
        let error = check_order(Entity::Observations, &order).unwrap_err();
        assert!(error.contains("at most 6"), "{error}");
        assert!(check_order(Entity::Observations, &order[..3]).is_ok());
    }

    #[test]
    fn time_bounds_come_from_top_level_conjuncts() {
        let e = parse_filter(
            "phenomenonTime ge 2026-11-01T00:00:00Z and result gt 3 and 2026-11-02T00:00:00Z gt phenomenonTime",
        )
        .unwrap();
        let (from, to) = time_bounds(&e);
        assert_eq!(from.unwrap().to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(to.unwrap().to_rfc3339(), "2026-11-02T00:00:00+00:00");
        let e = parse_filter("phenomenonTime ge 2026-11-01T00:00:00Z or result gt 3").unwrap();
        assert_eq!(time_bounds(&e), (None, None), "an `or` bounds nothing");
    }

    /// A small, seeded fuzz run over the grammar's pieces: parsing and
    /// translating never panic, whatever the combination.
    #[test]
    fn arbitrary_expressions_never_panic() {
        const PIECES: [&str; 46] = [
            "name",
            "id",
            "result",
            "phenomenonTime",
            "Thing/name",
            "Datastream/Thing/id",
            "properties/x",
            "location",
            "eq",
            "ne",
            "gt",
            "lt",
            "and",
            "or",
            "not",
            "add",
            "mul",
            "div",
            "mod",
            "-",
            "(",
            ")",
            ",",
            "/",
            "'a''b'",
            "'",
            "3",
            "-1.5e3",
            "1e400",
            "2026-11-25T10:00:00Z",
            "2026-13-45",
            "null",
            "true",
            "substring(",
            "geo.intersects(",
            "geography'POINT(1 2)'",
            "geography'POLYGON((0 0,1 0,1 1,0 0))'",
            "year(",
            "now()",
            " ",
            "Datastreams/name",
            "Locations/location",
            "Thing/@iot.id",
            "Datastreams/any(d:",
            "Things/all(t: t/Datastreams/name eq",
            "d/name",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let view = View::of_ids(vec![1, 2], vec![1]);
        let translator = Translator { view: &view };
        for _ in 0..20_000 {
            let len = 1 + next() % 12;
            let text: String =
                (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect::<Vec<_>>().join(" ");
            if let Ok(expr) = super::super::expr::parse_filter(&text) {
                for entity in super::super::model::ALL {
                    let _ = translator.push_filter(&mut Sql::new(""), entity, &expr);
                }
            }
            if let Ok(items) = super::super::expr::parse_orderby(&text) {
                let _ = translator.push_order(&mut Sql::new(""), Entity::Observations, &items);
            }
        }
    }
}
