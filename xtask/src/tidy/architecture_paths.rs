//! `architecture-paths`: every path in ARCHITECTURE.md's code map exists, so that the map does not
//! drift from the tree.
//!
//! A path is a backticked token in a row of the table under `## Code map` that contains a `/` or ends
//! in a file extension, without spaces (`GET /v1/live` is a request), not starting with `/` (a URL
//! path) and without glob or Rust syntax. It may be written from the repository root, from the
//! row's own path (its first column: `routes/` in the `services/api/` row), from that crate's `src/`,
//! or from the crate the row's path lies in (`support/…` in the `tests/oidc-provider/` row).
//! Paths the tree produces rather than holds (anchored `.gitignore` entries such as `.hoheit/` or
//! the dashboard's `dist/`) count as existing.

use std::path::Path;

use super::{Tree, Violation};

const RULE: &str = "architecture-paths";
const FILE: &str = "ARCHITECTURE.md";
const HEADING: &str = "## Code map";
const EXTENSIONS: &[&str] =
    &[".rs", ".md", ".toml", ".py", ".mjs", ".js", ".json", ".env", ".sh", ".yaml", ".yml", ".proto", ".lock", ".sql"];

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    if !tree.exists(FILE) {
        return Ok(vec![Violation::new(FILE, 0, RULE, "ARCHITECTURE.md is missing")]);
    }
    let text = tree.read(FILE)?;
    let Some(rows) = code_map_rows(&text) else {
        return Ok(vec![Violation::new(FILE, 0, RULE, format!("no `{HEADING}` section"))]);
    };
    let mut violations = Vec::new();
    for (line, row) in rows {
        let cells: Vec<&str> = row.trim().trim_matches('|').split('|').collect();
        let row_path = cells.first().and_then(|cell| backticked(cell).into_iter().next()).filter(|t| is_path(t));
        for token in cells.iter().flat_map(|cell| backticked(cell)).filter(|t| is_path(t)) {
            if !candidates(tree, token, row_path).iter().any(|c| tree.exists(c) || tree.is_ignored(c)) {
                let message = match row_path {
                    Some(row_path) if row_path != token => {
                        format!("`{token}` (row `{row_path}`) is not in the tree, from the root or from the row's path")
                    }
                    _ => format!("`{token}` is not in the tree"),
                };
                violations.push(Violation::new(FILE, line, RULE, message));
            }
        }
    }
    Ok(violations)
}

/// The table rows of the code map with their 1-based line numbers; `None` without the section.
fn code_map_rows(text: &str) -> Option<Vec<(usize, &str)>> {
    let mut lines = text.lines().enumerate();
    lines.find(|(_, line)| line.trim_end() == HEADING)?;
    let rows = lines
        .take_while(|(_, line)| !line.starts_with("# ") && !line.starts_with("## "))
        .filter(|(_, line)| line.trim_start().starts_with('|'))
        .filter(|(_, line)| !line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')))
        .map(|(index, line)| (index + 1, line))
        .collect();
    Some(rows)
}

/// The backticked tokens of a table cell.
fn backticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

fn is_path(token: &str) -> bool {
    let plain = !token.is_empty()
        && !token.starts_with('/')
        && !token.contains(char::is_whitespace)
        && !token.contains(['*', '?', '#', '$', '{', '<', '['])
        && !token.contains("::");
    plain && (token.contains('/') || EXTENSIONS.iter().any(|ext| token.ends_with(ext)))
}

/// Where `token` may point: from the root, the row's path, its `src/`, and the crate around the row.
fn candidates(tree: &Tree, token: &str, row_path: Option<&str>) -> Vec<String> {
    let mut bases = vec![String::new()];
    if let Some(row_path) = row_path {
        let row_path = row_path.trim_end_matches('/');
        bases.push(row_path.to_owned());
        let crate_dir = Path::new(row_path)
            .ancestors()
            .map(|dir| dir.to_string_lossy().into_owned())
            .take_while(|dir| !dir.is_empty())
            .find(|dir| tree.exists(&format!("{dir}/Cargo.toml")));
        if let Some(crate_dir) = crate_dir {
            bases.push(format!("{crate_dir}/src"));
            bases.push(crate_dir);
        }
    }
    bases.iter().map(|base| if base.is_empty() { token.to_owned() } else { format!("{base}/{token}") }).collect()
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn paths_in_the_code_map_that_do_not_exist_are_reported() {
        let dir = clean_tree();
        let map = std::fs::read_to_string(dir.path().join("ARCHITECTURE.md")).unwrap().replace(
            "| `xtask/` | `cargo xtask tidy` |",
            "| `xtask/` | `cargo xtask tidy`, `src/main.rs`, `src/gone.rs` |\n\
             | `services/gone/` | `helper.py`, `deploy/hoheit.env` |",
        );
        write(dir.path(), "ARCHITECTURE.md", &map);
        write(dir.path(), "deploy/hoheit.env", "PORT=1\n");
        assert_eq!(
            check(dir.path()),
            vec![
                "ARCHITECTURE.md:9: architecture-paths: `src/gone.rs` (row `xtask/`) is not in the tree, from the root \
                 or from the row's path",
                "ARCHITECTURE.md:10: architecture-paths: `services/gone/` is not in the tree",
                "ARCHITECTURE.md:10: architecture-paths: `helper.py` (row `services/gone/`) is not in the tree, from \
                 the root or from the row's path",
            ]
        );
    }

    #[test]
    fn a_missing_code_map_is_reported() {
        let dir = clean_tree();
        write(dir.path(), "ARCHITECTURE.md", "# Architecture\n\nNo map.\n");
        assert_eq!(check(dir.path()), vec!["ARCHITECTURE.md:0: architecture-paths: no `## Code map` section"]);
    }
}
