//! `module-doc`: every Rust file opens with a module doc (`//!`) saying what it is for (STYLE 8,
//! after mini-redis): its first non-blank line starts with `//!`.

use super::{Tree, Violation};

const RULE: &str = "module-doc";
/// Where our Rust source lives (the tree already leaves out build output and fuzz corpora).
const DIRS: &[&str] = &["services", "proto", "tests", "benches", "xtask"];

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for dir in DIRS {
        for file in tree.files(dir)?.into_iter().filter(|f| f.ends_with(".rs")) {
            let text = tree.read(&file)?;
            let first = text.lines().enumerate().find(|(_, line)| !line.trim().is_empty());
            match first {
                Some((_, line)) if line.trim_start().starts_with("//!") => {}
                Some((index, _)) => violations.push(missing(&file, index + 1)),
                None => violations.push(missing(&file, 1)),
            }
        }
    }
    Ok(violations)
}

fn missing(file: &str, line: usize) -> Violation {
    Violation::new(file, line, RULE, "the file does not open with a module doc (`//!`)")
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_file_without_a_module_doc_is_reported() {
        let dir = clean_tree();
        write(dir.path(), "services/core/src/plain.rs", "\n// a plain comment\nfn f() {}\n");
        write(dir.path(), "tests/empty.rs", "");
        assert_eq!(
            check(dir.path()),
            vec![
                "services/core/src/plain.rs:2: module-doc: the file does not open with a module doc (`//!`)",
                "tests/empty.rs:1: module-doc: the file does not open with a module doc (`//!`)",
            ]
        );
    }

    #[test]
    fn files_outside_the_source_dirs_and_in_skipped_dirs_are_not_checked() {
        let dir = clean_tree();
        write(dir.path(), "services/dashboard/node_modules/x/build.rs", "fn f() {}\n");
        write(dir.path(), "tests/fuzz/corpus/decode/seed.rs", "fn f() {}\n");
        write(dir.path(), "helm/chart.rs", "fn f() {}\n");
        assert_eq!(check(dir.path()), Vec::<String>::new());
    }
}
