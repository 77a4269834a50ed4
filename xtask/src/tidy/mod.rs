//! The tidy check: rules that ARCHITECTURE.md (its invariants and code map) and STYLE state in
//! prose, checked on the source tree, in the spirit of rust-analyzer's `xtask/src/tidy.rs`.
//!
//! Each rule is one module with one `check` function over a [`Tree`]; [`check`] runs them all. A
//! violation names the file and line, so that an editor can jump to it.

mod access_gate;
mod api_sql;
mod architecture_paths;
mod layers;
mod module_doc;
mod openapi_routes;
mod rust_source;
mod service_deps;
mod shellcheck;
mod tree;
mod typed_rows;

use std::fmt;
use std::path::Path;

pub use tree::Tree;

/// One broken rule at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The file, relative to the repository root with `/` separators; empty when the rule could not
    /// run at all (a missing tool).
    pub path: String,
    /// 1-based; 0 when the violation concerns the file (or the rule) as a whole.
    pub line: usize,
    pub rule: &'static str,
    pub message: String,
}

impl Violation {
    pub fn new(path: impl Into<String>, line: usize, rule: &'static str, message: impl Into<String>) -> Self {
        Self { path: path.into(), line, rule, message: message.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.rule, self.message)
        } else {
            write!(f, "{}:{}: {}: {}", self.path, self.line, self.rule, self.message)
        }
    }
}

/// Runs every rule on the tree at `root`; the violations in rule order, each rule's sorted by place.
pub fn check(root: &Path) -> anyhow::Result<Vec<Violation>> {
    let tree = Tree::open(root)?;
    let mut violations = Vec::new();
    violations.extend(module_doc::check(&tree)?);
    violations.extend(api_sql::check(&tree)?);
    violations.extend(access_gate::check(&tree)?);
    violations.extend(typed_rows::check(&tree)?);
    violations.extend(service_deps::check(&tree)?);
    violations.extend(layers::check(&tree)?);
    violations.extend(architecture_paths::check(&tree)?);
    violations.extend(openapi_routes::check(&tree)?);
    violations.extend(shellcheck::check(&tree, shellcheck::PROGRAM)?);
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::tree::testing::{clean_tree, write};

    #[test]
    fn a_clean_tree_passes_every_rule() {
        let dir = clean_tree();
        let violations = super::check(dir.path()).unwrap();
        assert_eq!(violations, vec![]);
    }

    #[test]
    fn violations_print_as_path_line_rule_message() {
        let dir = clean_tree();
        write(dir.path(), "services/api/src/orphan.rs", "fn orphan() {}\n");
        let printed: Vec<String> = super::check(dir.path()).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            vec!["services/api/src/orphan.rs:1: module-doc: the file does not open with a module doc (`//!`)"]
        );
    }
}
