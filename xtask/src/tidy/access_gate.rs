//! `access-gate`: in the api, only the access gate (`services/api/src/access.rs`) asks the policy
//! or checks ownership; routes and SensorThings ask the gate (ARCHITECTURE.md, invariants: "Every
//! data read goes through `access::authorize`").
//!
//! Flagged in `services/api/src` outside `access.rs`, in code (not comments or strings): a call of
//! the policy's decisions (`decide`, `decide_export`, `is_allowed`, `policy::visibility`) or of the
//! caller's ownership checks (`owns_data_of`, `administers`).

use super::rust_source::lex;
use super::{Tree, Violation};

const RULE: &str = "access-gate";
const API_SRC: &str = "services/api/src";
const GATE: &str = "services/api/src/access.rs";

/// Functions that decide access; only the gate calls them.
const DECISIONS: [&str; 5] = ["decide", "decide_export", "is_allowed", "owns_data_of", "administers"];

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for file in tree.files(API_SRC)? {
        if !file.ends_with(".rs") || file == GATE {
            continue;
        }
        for (index, code) in lex(&tree.read(&file)?).code_lines.iter().enumerate() {
            if let Some(call) = decision_in(code) {
                let message = format!("`{call}` outside the access gate: ask `crate::access`, which asks the policy");
                violations.push(Violation::new(&file, index + 1, RULE, message));
            }
        }
    }
    violations.sort_by_key(|v| (v.path.clone(), v.line));
    Ok(violations)
}

/// The access decision a line of code calls or imports, if any.
fn decision_in(code: &str) -> Option<String> {
    let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
    if let Some(word) = words.iter().find(|w| DECISIONS.contains(w)) {
        return Some((*word).to_owned());
    }
    let compact: String = code.split_whitespace().collect();
    let imports_visibility = compact.starts_with("usehoheit_domain::policy")
        && compact.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == "visibility");
    (compact.contains("policy::visibility(") || imports_visibility).then(|| "policy::visibility".to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::tree::testing::{clean_tree, write};
    use super::super::Tree;
    use super::decision_in;

    fn check(root: &std::path::Path) -> Vec<String> {
        super::check(&Tree::open(root).unwrap()).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn policy_decisions_outside_the_gate_are_reported() {
        let dir = clean_tree();
        write(
            dir.path(),
            "services/api/src/routes/things.rs",
            "//! Things: decide(…) in a doc is fine.\n\nuse hoheit_domain::policy::{visibility, Caller};\n\n\
             fn show(caller: &Caller) -> bool {\n    let why = \"is_allowed(\";\n    \
             policy::decide(caller, &d, &g, &r, now).is_allowed()\n        || caller.owns_data_of(1)\n}\n",
        );
        write(
            dir.path(),
            "services/api/src/access.rs",
            "//! The gate.\n\nfn gate() -> bool {\n    policy::decide(c, d, g, r, n).is_allowed()\n}\n",
        );
        assert_eq!(
            check(dir.path()),
            vec![
                "services/api/src/routes/things.rs:3: access-gate: `policy::visibility` outside the access gate: ask `crate::access`, which asks the policy",
                "services/api/src/routes/things.rs:7: access-gate: `decide` outside the access gate: ask `crate::access`, which asks the policy",
                "services/api/src/routes/things.rs:8: access-gate: `owns_data_of` outside the access gate: ask `crate::access`, which asks the policy",
            ]
        );
    }

    #[test]
    fn reading_the_gates_answers_is_no_decision() {
        assert_eq!(decision_in("let visibility = view.visibility(stream.id);"), None);
        assert_eq!(decision_in("if visibility.shows_latest_value() {"), None);
        assert_eq!(decision_in("let decided = undecided();"), None);
        assert_eq!(decision_in("let ok = policy::visibility(&c, &d, &g, now);"), Some("policy::visibility".into()));
    }
}
