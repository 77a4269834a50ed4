//! OData expressions of SensorThings `$filter` and `$orderby`: a lexer and a
//! precedence-climbing parser into [`Expr`]. Everything here is pure; the
//! translation to SQL (with bound parameters) is in `sql.rs`.

use chrono::{DateTime, FixedOffset, Utc};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Time(DateTime<Utc>),
    /// A geography literal (`geography'POINT(13.8 52.8)'`), its WKT.
    Geography(Geometry),
    /// A property path such as `name`, `Thing/name`, `unitOfMeasurement/symbol`.
    Path(Vec<String>),
    /// An OData lambda over a collection: `Datastreams/any(d: d/name eq 'x')`,
    /// `Datastreams/all(d: …)`, `Datastreams/any()` (not empty).
    Lambda(Lambda),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

/// `collection/any(variable: body)` or `collection/all(variable: body)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lambda {
    /// The path to the collection: navigations, the first possibly a lambda variable.
    pub collection: Vec<String>,
    pub quantifier: Quantifier,
    /// The variable and the condition; `None` for `any()`.
    pub predicate: Option<(String, Box<Expr>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    Any,
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    Point(f64, f64),
    /// The outer ring of a polygon, as (x, y) = (longitude, latitude).
    Polygon(Vec<(f64, f64)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinaryOp {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "or" => Self::Or,
            "and" => Self::And,
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            "add" => Self::Add,
            "sub" => Self::Sub,
            "mul" => Self::Mul,
            "div" => Self::Div,
            "mod" => Self::Mod,
            _ => return None,
        })
    }

    /// Binding strength: or < and < comparison < additive < multiplicative.
    fn precedence(self) -> u8 {
        match self {
            Self::Or => 1,
            Self::And => 2,
            Self::Eq | Self::Ne | Self::Gt | Self::Ge | Self::Lt | Self::Le => 3,
            Self::Add | Self::Sub => 4,
            Self::Mul | Self::Div | Self::Mod => 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    String(String),
    Number(f64),
    Time(DateTime<Utc>),
    Geography(String),
    Open,
    Close,
    Comma,
    Slash,
    Colon,
    Minus,
}

/// The longest expression text accepted, and the deepest nesting.
pub const MAX_EXPRESSION_CHARS: usize = 4_096;
const MAX_DEPTH: usize = 64;
/// The most nodes (values, properties, operators, function calls) of one
/// `$filter` or `$orderby`. Each node is SQL evaluated for every candidate
/// row, so the size of an expression multiplies the work of its query; 100
/// is about 30 comparisons joined by `and`/`or`, more than a hand-written or
/// generated query of a SensorThings client needs.
pub const MAX_NODES: usize = 100;
/// The most terms of one `$orderby`: every term after the first only breaks
/// ties, so more than a few order nothing and only cost a sort key each.
pub const MAX_ORDER_TERMS: usize = 5;

impl Expr {
    /// The number of nodes of the expression tree.
    pub fn nodes(&self) -> usize {
        1 + match self {
            Expr::Not(inner) | Expr::Negate(inner) => inner.nodes(),
            Expr::Binary(_, left, right) => left.nodes() + right.nodes(),
            Expr::Call(_, args) => args.iter().map(Expr::nodes).sum(),
            Expr::Lambda(lambda) => lambda.predicate.as_ref().map_or(0, |(_, body)| body.nodes()),
            _ => 0,
        }
    }
}

fn check_nodes(nodes: usize) -> Result<(), String> {
    if nodes > MAX_NODES {
        return Err(format!(
            "the expression has {nodes} parts (values, properties, operators, functions); at most {MAX_NODES} are accepted"
        ));
    }
    Ok(())
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    if text.len() > MAX_EXPRESSION_CHARS {
        return Err(format!("the expression is longer than {MAX_EXPRESSION_CHARS} characters"));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '/' => {
                tokens.push(Token::Slash);
                i += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            '-' if !chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                tokens.push(Token::Minus);
                i += 1;
            }
            '\'' => {
                let (value, next) = quoted(&chars, i)?;
                tokens.push(Token::String(value));
                i = next;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                // A date-time literal (2026-11-25T10:00:00Z) or a number.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | ':' | '-' | '+'))
                {
                    // A sign only inside a date-time or right after an exponent marker.
                    if matches!(chars[i], '-' | '+') {
                        let so_far: String = chars[start..i].iter().collect();
                        let exponent = so_far.ends_with(['e', 'E']) && !so_far.contains('T');
                        if !(exponent || so_far.contains('T') || so_far.len() == 4 || so_far.len() == 7) {
                            break;
                        }
                    }
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if word.len() >= 10 && word.as_bytes().get(4) == Some(&b'-') {
                    tokens.push(Token::Time(parse_time(&word)?));
                } else {
                    let number =
                        word.parse::<f64>().map_err(|_| format!("`{word}` is neither a number nor a date-time"))?;
                    if !number.is_finite() {
                        return Err(format!("`{word}` is not a finite number"));
                    }
                    tokens.push(Token::Number(number));
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '$' || c == '@' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '$' | '@')) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') && matches!(word.as_str(), "geography" | "geometry") {
                    let (value, next) = quoted(&chars, i)?;
                    tokens.push(Token::Geography(value));
                    i = next;
                } else {
                    tokens.push(Token::Word(word));
                }
            }
            other => return Err(format!("unexpected character `{other}` at position {i}")),
        }
    }
    Ok(tokens)
}

/// A quoted string starting at `chars[start] == '\''`; `''` is a quote.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(format!("the string starting at position {start} is not closed")),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                value.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((value, i + 1)),
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

/// An ISO 8601 date-time with a zone (`Z` or an offset); a date alone is midnight UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::<FixedOffset>::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(format!("`{text}` is not an ISO 8601 date-time with a time zone (e.g. 2026-11-25T10:00:00Z)"))
}

fn parse_geography(wkt: &str) -> Result<Geometry, String> {
    let upper = wkt.trim().to_ascii_uppercase();
    let bad = || format!("geography'{wkt}' is not a WKT POINT or POLYGON in longitude latitude order");
    let coords = |text: &str| -> Result<Vec<(f64, f64)>, String> {
        text.split(',')
            .map(|pair| {
                let mut it = pair.split_whitespace().map(str::parse::<f64>);
                match (it.next(), it.next(), it.next()) {
                    (Some(Ok(x)), Some(Ok(y)), None) if x.is_finite() && y.is_finite() => Ok((x, y)),
                    _ => Err(bad()),
                }
            })
            .collect()
    };
    if let Some(rest) = upper.strip_prefix("POINT") {
        let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
        let points = coords(inner)?;
        return match points.as_slice() {
            [(x, y)] => Ok(Geometry::Point(*x, *y)),
            _ => Err(bad()),
        };
    }
    if let Some(rest) = upper.strip_prefix("POLYGON") {
        let inner = rest.trim().strip_prefix("((").and_then(|r| r.strip_suffix("))")).ok_or_else(bad)?;
        // Only the outer ring: holes are not supported.
        if inner.contains('(') {
            return Err(format!("geography'{wkt}': polygons with holes are not supported"));
        }
        let ring = coords(inner)?;
        if ring.len() < 4 || ring.len() > 1_000 {
            return Err(format!("geography'{wkt}': a polygon ring has 4 to 1,000 points (closed)"));
        }
        return Ok(Geometry::Polygon(ring));
    }
    Err(bad())
}

/// Parses a `$filter` expression.
pub fn parse_filter(text: &str) -> Result<Expr, String> {
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, at: 0, depth: 0 };
    let expr = parser.expression(0)?;
    if let Some(token) = parser.peek() {
        return Err(format!("unexpected {} after the end of the expression", describe(token)));
    }
    check_nodes(expr.nodes())?;
    Ok(expr)
}

/// One `$orderby` item.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub expr: Expr,
    pub descending: bool,
}

/// Parses `$orderby`: comma-separated expressions, each optionally `asc`/`desc`.
pub fn parse_orderby(text: &str) -> Result<Vec<OrderItem>, String> {
    let tokens = lex(text)?;
    let mut parser = Parser { tokens, at: 0, depth: 0 };
    let mut items = Vec::new();
    loop {
        let expr = parser.expression(0)?;
        let descending = match parser.peek() {
            // Clients write the direction in capitals too (the FROST Python client's default is `DESC`).
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("desc") => {
                parser.at += 1;
                true
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("asc") => {
                parser.at += 1;
                false
            }
            _ => false,
        };
        items.push(OrderItem { expr, descending });
        if items.len() > MAX_ORDER_TERMS {
            return Err(format!("$orderby takes at most {MAX_ORDER_TERMS} terms"));
        }
        match parser.next() {
            None => {
                check_nodes(items.iter().map(|i| i.expr.nodes()).sum())?;
                return Ok(items);
            }
            Some(Token::Comma) => {}
            Some(token) => return Err(format!("$orderby: unexpected {}", describe(&token))),
        }
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("`{w}`"),
        Token::String(s) => format!("string '{s}'"),
        Token::Number(n) => format!("number {n}"),
        Token::Time(t) => format!("date-time {}", t.to_rfc3339()),
        Token::Geography(g) => format!("geography '{g}'"),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Comma => "`,`".into(),
        Token::Slash => "`/`".into(),
        Token::Colon => "`:`".into(),
        Token::Minus => "`-`".into(),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect_close(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Close) => Ok(()),
            Some(token) => Err(format!("expected `)`, found {}", describe(&token))),
            None => Err("expected `)`, found the end of the expression".into()),
        }
    }

    /// Binary operators of at least `min` precedence, left-associative.
    fn expression(&mut self, min: u8) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the expression is nested deeper than {MAX_DEPTH} levels"));
        }
        let mut left = self.unary()?;
        while let Some(Token::Word(word)) = self.peek() {
            let Some(op) = BinaryOp::from_word(word) else { break };
            if op.precedence() < min {
                break;
            }
            self.at += 1;
            let right = self.expression(op.precedence() + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Word(w)) if w == "not" => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.expression(3)?)))
            }
            Some(Token::Minus) => {
                self.at += 1;
                Ok(Expr::Negate(Box::new(self.expression(6)?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self.next().ok_or("the expression ends where a value was expected")?;
        match token {
            Token::Open => {
                let inner = self.expression(0)?;
                self.expect_close()?;
                Ok(inner)
            }
            Token::String(s) => Ok(Expr::String(s)),
            Token::Number(n) => Ok(Expr::Number(n)),
            Token::Time(t) => Ok(Expr::Time(t)),
            Token::Geography(wkt) => Ok(Expr::Geography(parse_geography(&wkt)?)),
            Token::Word(word) => match word.as_str() {
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                "null" => Ok(Expr::Null),
                _ if self.peek() == Some(&Token::Open) => {
                    self.at += 1;
                    let mut args = Vec::new();
                    if self.peek() == Some(&Token::Close) {
                        self.at += 1;
                    } else {
                        loop {
                            args.push(self.expression(0)?);
                            match self.next() {
                                Some(Token::Comma) => {}
                                Some(Token::Close) => break,
                                Some(token) => {
                                    return Err(format!("in the arguments of {word}: unexpected {}", describe(&token)))
                                }
                                None => return Err(format!("the arguments of {word} are not closed")),
                            }
                        }
                    }
                    Ok(Expr::Call(word, args))
                }
                _ => {
                    let mut path = vec![word];
                    while self.peek() == Some(&Token::Slash) {
                        self.at += 1;
                        match self.next() {
                            Some(Token::Word(segment))
                                if (segment == "any" || segment == "all") && self.peek() == Some(&Token::Open) =>
                            {
                                self.at += 1;
                                return self.lambda(path, &segment);
                            }
                            Some(Token::Word(segment)) => path.push(segment),
                            _ => return Err(format!("`{}/` must be followed by a property name", path.join("/"))),
                        }
                    }
                    Ok(Expr::Path(path))
                }
            },
            other => Err(format!("unexpected {} where a value was expected", describe(&other))),
        }
    }

    /// The rest of `collection/any(` or `collection/all(`: `)`, or `variable: condition)`.
    fn lambda(&mut self, collection: Vec<String>, word: &str) -> Result<Expr, String> {
        let quantifier = if word == "any" { Quantifier::Any } else { Quantifier::All };
        if self.peek() == Some(&Token::Close) {
            self.at += 1;
            if quantifier == Quantifier::All {
                return Err(format!("`{}/all()` needs a condition: all(x: x/… )", collection.join("/")));
            }
            return Ok(Expr::Lambda(Lambda { collection, quantifier, predicate: None }));
        }
        let variable = match (self.next(), self.next()) {
            (Some(Token::Word(variable)), Some(Token::Colon)) if !variable.contains(['.', '$', '@']) => variable,
            _ => {
                return Err(format!(
                    "`{}/{word}(` must be followed by a variable and a colon, e.g. {word}(d: d/name eq 'x')",
                    collection.join("/")
                ))
            }
        };
        let body = self.expression(0)?;
        self.expect_close()?;
        Ok(Expr::Lambda(Lambda { collection, quantifier, predicate: Some((variable, Box::new(body))) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Box<Expr> {
        Box::new(Expr::Path(p.split('/').map(str::to_owned).collect()))
    }

    #[test]
    fn precedence_and_paths() {
        let e = parse_filter("result gt 2 add 3 mul 4 and Thing/name eq 'O''Brien'").unwrap();
        let arith = Expr::Binary(
            BinaryOp::Add,
            Box::new(Expr::Number(2.0)),
            Box::new(Expr::Binary(BinaryOp::Mul, Box::new(Expr::Number(3.0)), Box::new(Expr::Number(4.0)))),
        );
        let left = Expr::Binary(BinaryOp::Gt, path("result"), Box::new(arith));
        let right = Expr::Binary(BinaryOp::Eq, path("Thing/name"), Box::new(Expr::String("O'Brien".into())));
        assert_eq!(e, Expr::Binary(BinaryOp::And, Box::new(left), Box::new(right)));
    }

    #[test]
    fn times_numbers_and_negatives() {
        let e = parse_filter("phenomenonTime ge 2026-11-25T10:00:00+01:00 and result lt -1.5e-3").unwrap();
        let Expr::Binary(BinaryOp::And, l, r) = e else { panic!("and") };
        assert_eq!(
            *l,
            Expr::Binary(
                BinaryOp::Ge,
                path("phenomenonTime"),
                Box::new(Expr::Time(parse_time("2026-11-25T09:00:00Z").unwrap()))
            )
        );
        assert_eq!(*r, Expr::Binary(BinaryOp::Lt, path("result"), Box::new(Expr::Number(-0.0015))));
        assert_eq!(parse_filter("result sub 3 eq 1").unwrap(), parse_filter("(result sub 3) eq 1").unwrap());
        assert!(matches!(parse_filter("-result lt 2").unwrap(), Expr::Binary(BinaryOp::Lt, ..)));
    }

    #[test]
    fn functions_and_geography() {
        let e =
            parse_filter("geo.intersects(location, geography'POLYGON((13 52, 14 52, 14 53, 13 53, 13 52))')").unwrap();
        let Expr::Call(name, args) = e else { panic!("call") };
        assert_eq!(name, "geo.intersects");
        assert!(matches!(&args[1], Expr::Geography(Geometry::Polygon(r)) if r.len() == 5));
        assert!(parse_filter("not startswith(name, 'Eber')").is_ok());
        assert!(parse_filter("now() gt phenomenonTime").is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(parse_filter("name eq 'open").unwrap_err().contains("not closed"));
        assert!(parse_filter("name eq").unwrap_err().contains("ends"));
        assert!(parse_filter("(name eq 'x'").unwrap_err().contains("expected `)`"));
        assert!(parse_filter("name eq 'x' 'y'").unwrap_err().contains("after the end"));
        assert!(parse_filter("name ; drop").unwrap_err().contains("unexpected character"));
        assert!(parse_filter(&"(".repeat(200)).unwrap_err().contains("nested"));
        assert!(parse_filter("geo.intersects(location, geography'LINESTRING(1 2, 3 4)')").is_err());
    }

    #[test]
    fn lambdas_over_collections() {
        let Expr::Lambda(any) = parse_filter("Datastreams/any(d: d/ObservedProperty/name eq 'no2')").unwrap() else {
            panic!("a lambda")
        };
        assert_eq!((any.collection, any.quantifier), (vec!["Datastreams".to_owned()], Quantifier::Any));
        let (variable, body) = any.predicate.unwrap();
        assert_eq!(variable, "d");
        assert_eq!(
            *body,
            Expr::Binary(BinaryOp::Eq, path("d/ObservedProperty/name"), Box::new(Expr::String("no2".into())))
        );
        let Expr::Lambda(nonempty) = parse_filter("Thing/Datastreams/any()").unwrap() else { panic!("a lambda") };
        assert_eq!(nonempty.collection.len(), 2);
        assert!(nonempty.predicate.is_none());
        assert!(parse_filter("Datastreams/all()").unwrap_err().contains("needs a condition"));
        assert!(parse_filter("Datastreams/any(d/name eq 'x')").unwrap_err().contains("variable and a colon"));
        assert!(parse_filter("Datastreams/any(d: d/name eq 'x'").unwrap_err().contains("expected `)`"));
        // `any` and `all` stay property names where no parenthesis follows.
        assert_eq!(parse_filter("properties/any eq 'x'").unwrap().nodes(), 3);
    }

    #[test]
    fn expressions_are_bounded_in_size() {
        let comparisons = |n: usize| vec!["result eq 1"; n].join(" or ");
        // Three nodes a comparison, one an `or`.
        assert!(parse_filter(&comparisons(25)).is_ok());
        let error = parse_filter(&comparisons(26)).unwrap_err();
        assert!(error.contains("103 parts") && error.contains("at most 100"), "{error}");
        assert!(parse_orderby("id, name, result, phenomenonTime, resultTime").is_ok());
        assert!(parse_orderby("id, name, result, phenomenonTime, resultTime, id")
            .unwrap_err()
            .contains("at most 5 terms"));
        assert_eq!(parse_filter("not startswith(name, 'a') and -result lt 2").unwrap().nodes(), 9);
    }

    #[test]
    fn orderby_items() {
        let items = parse_orderby("phenomenonTime desc, id").unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].descending && !items[1].descending);
        assert!(parse_orderby("name sideways").is_err());
        assert!(parse_orderby("id DESC").unwrap()[0].descending, "as the FROST Python client writes it");
    }
}
