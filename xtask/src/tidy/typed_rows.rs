//! `typed-rows`: a statement's rows are read into a type (`#[derive(sqlx::FromRow)]` beside the
//! SQL, `query_as`, `query_scalar`), never column by column with `row.get("name")`, which fails
//! only when it runs (ARCHITECTURE.md, invariants).
//!
//! Flagged in `services/` and `tests/` outside the SensorThings compiler (`services/api/src/sta/`,
//! whose rows are assembled from the query options at run time): bringing in sqlx's `Row` trait,
//! without which `row.get`/`row.try_get` do not compile: `sqlx::Row`, `Row` inside a
//! `sqlx::{…}` group, and `sqlx::prelude`.

use super::rust_source::lex;
use super::tree::line_of;
use super::{Tree, Violation};

const RULE: &str = "typed-rows";
const DIRS: &[&str] = &["services", "tests"];
const ALLOWED: &str = "services/api/src/sta/";
const MESSAGE: &str = "sqlx's `Row` trait (`row.get(\"column\")`): read rows into a `#[derive(sqlx::FromRow)]` \
                       type with `query_as`, or a value with `query_scalar`";

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for dir in DIRS {
        for file in tree.files(dir)? {
            if !file.ends_with(".rs") || file.starts_with(ALLOWED) {
                continue;
            }
            let code = lex(&tree.read(&file)?).code_lines.join("\n");
            for at in row_trait_uses(&code) {
                violations.push(Violation::new(&file, line_of(&code, at), RULE, MESSAGE));
            }
        }
    }
    violations.sort_by_key(|v| (v.path.clone(), v.line));
    Ok(violations)
}

/// Byte offsets in `code` (comments and literals removed) where sqlx's `Row` trait is named.
fn row_trait_uses(code: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (at, prefix) in code.match_indices("sqlx::") {
        let start = at + prefix.len();
        let rest = &code[start..];
        if starts_with_word(rest, "Row") || starts_with_word(rest, "prelude") {
            found.push(at);
        } else if rest.starts_with('{') {
            let group = &rest[..closing_brace(rest)];
            found.extend(words(group, "Row").map(|i| start + i));
        }
    }
    found
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn starts_with_word(text: &str, word: &str) -> bool {
    text.strip_prefix(word).is_some_and(|after| !after.starts_with(is_ident))
}

/// The offset just past the `}` that closes the group `text` opens with.
fn closing_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth <= 1 => return i + 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// Offsets of `word` in `text` as a whole identifier that is not part of a path (`postgres::Row`
/// would be another `Row`).
fn words<'a>(text: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| is_ident(c) || c == ':') && !after.is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;
    use super::row_trait_uses;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_row_trait_outside_sta_is_reported() {
        let dir = clean_tree();
        write(
            dir.path(),
            "services/core/src/things.rs",
            "//! Things.\n\nuse sqlx::{FromRow, PgPool,\n    Row};\n// sqlx::Row in a comment is fine\n\
             fn name(row: &sqlx::postgres::PgRow) -> String {\n    sqlx::Row::get(row, \"sqlx::Row\")\n}\n",
        );
        write(dir.path(), "tests/things.rs", "//! Tests.\n\nuse sqlx::prelude::*;\n");
        write(dir.path(), "services/api/src/sta/rows.rs", "//! Dynamic rows.\n\nuse sqlx::Row;\n");
        let message = "typed-rows: sqlx's `Row` trait (`row.get(\"column\")`): read rows into a \
                       `#[derive(sqlx::FromRow)]` type with `query_as`, or a value with `query_scalar`";
        assert_eq!(
            check(dir.path()),
            vec![
                format!("services/core/src/things.rs:4: {message}"),
                format!("services/core/src/things.rs:7: {message}"),
                format!("tests/things.rs:3: {message}"),
            ]
        );
    }

    #[test]
    fn only_the_trait_itself_counts() {
        assert_eq!(row_trait_uses("use sqlx::{FromRow, PgRow, postgres::{PgRow}};"), Vec::<usize>::new());
        assert_eq!(row_trait_uses("use sqlx::{postgres::Row as _, Rows};"), Vec::<usize>::new());
        assert_eq!(row_trait_uses("use sqlx::{postgres::{PgPool}, Row as _};"), vec![31]);
        assert_eq!(row_trait_uses("use sqlx::Row as _;"), vec![4]);
        assert_eq!(row_trait_uses("use sqlx::RowIndex;"), Vec::<usize>::new());
    }
}
