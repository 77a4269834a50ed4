//! `access-gate`: only the access gates ask the policy or check ownership (ARCHITECTURE.md,
//! invariants: "Every data read goes through `access::authorize`"): in the api its gate
//! (`services/api/src/access.rs`), which routes and SensorThings ask; in the alerts service the
//! module that decides which rules' owners may still read their datastreams
//! (`services/alerts/src/access.rs`).
//!
//! Flagged in those crates' sources outside their gates, in code (not comments or strings): a call
//! of the policy's decisions (`decide`, `decide_export`, `is_allowed`, `policy::visibility`) or of
//! the caller's ownership checks (`owns_data_of`, `administers`).

use super::rust_source::lex;
use super::{Tree, Violation};

const RULE: &str = "access-gate";
/// Each crate's sources and the one file in them that may ask the policy.
const GATES: [(&str, &str); 2] =
    [("services/api/src", "services/api/src/access.rs"), ("services/alerts/src", "services/alerts/src/access.rs")];

/// Functions that decide access; only the gate calls them.
const DECISIONS: [&str; 5] = ["decide", "decide_export", "is_allowed", "owns_data_of", "administers"];

pub fn check(tree: &Tree) -> anyhow::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    for (src, gate) in GATES {
        for file in tree.files(src)? {
            if !file.ends_with(".rs") || file == gate {
                continue;
            }
            for (index, code) in lex(&tree.read(&file)?).code_lines.iter().enumerate() {
                if let Some(call) = decision_in(code) {
                    let message = format!("`{call}` outside the access gate: ask `{gate}`, which asks the policy");
                    violations.push(Violation::new(&file, index + 1, RULE, message));
                }
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
        write(
            dir.path(),
            "services/alerts/src/access.rs",
            "//! The gate.\n\nfn evaluable() -> bool {\n    policy::decide(c, d, g, r, n).is_allowed()\n}\n",
        );
        write(
            dir.path(),
            "services/alerts/src/service.rs",
            "//! The loop.\n\nfn reload() -> bool {\n    policy::decide(c, d, g, r, n).is_allowed()\n}\n",
        );
        assert_eq!(
            check(dir.path()),
            vec![
                "services/alerts/src/service.rs:4: access-gate: `decide` outside the access gate: ask `services/alerts/src/access.rs`, which asks the policy",
                "services/api/src/routes/things.rs:3: access-gate: `policy::visibility` outside the access gate: ask `services/api/src/access.rs`, which asks the policy",
                "services/api/src/routes/things.rs:7: access-gate: `decide` outside the access gate: ask `services/api/src/access.rs`, which asks the policy",
                "services/api/src/routes/things.rs:8: access-gate: `owns_data_of` outside the access gate: ask `services/api/src/access.rs`, which asks the policy",
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
