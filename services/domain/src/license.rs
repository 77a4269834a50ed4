//! Licenses by the names people read. A dataset's license is stored as it
//! was registered: for open data a URI of the dcat-ap.de license vocabulary
//! (or Creative Commons'), for the rest often the contract's own sentence.

use serde::Serialize;

/// The licenses of the dcat-ap.de vocabulary a town publishes under, by the
/// last part of their URI, with their German names.
const NAMES: [(&str, &str); 12] = [
    ("/dl-by-de/2.0", "Datenlizenz Deutschland – Namensnennung 2.0"),
    ("/dl-zero-de/2.0", "Datenlizenz Deutschland – Zero 2.0"),
    ("/dl-by-nc-de/1.0", "Datenlizenz Deutschland – Namensnennung – nicht kommerziell 1.0"),
    ("/cc-by/4.0", "Creative Commons Namensnennung 4.0 International (CC BY 4.0)"),
    (
        "/cc-by-sa/4.0",
        "Creative Commons Namensnennung – Weitergabe unter gleichen Bedingungen 4.0 International (CC BY-SA 4.0)",
    ),
    ("/cc-by-nd/4.0", "Creative Commons Namensnennung – Keine Bearbeitung 4.0 International (CC BY-ND 4.0)"),
    ("/cc-by-nc/4.0", "Creative Commons Namensnennung – Nicht kommerziell 4.0 International (CC BY-NC 4.0)"),
    ("/cc-zero", "Creative Commons Zero 1.0 Universell (CC0 1.0)"),
    ("/odbl", "Open Data Commons Open Database License (ODbL)"),
    ("/odby", "Open Data Commons Attribution License (ODC-BY)"),
    ("/officialWork", "Amtliches Werk, lizenzfrei nach § 5 Abs. 1 UrhG"),
    ("/other-closed", "Andere geschlossene Lizenz"),
];

/// A license as a reader is shown it: its name, and where it is a URI, the URI to follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct License {
    /// The license's name (for a URI outside the known vocabulary: the URI;
    /// for a license written as text: the text).
    pub name: String,
    /// The license's URI, when it was registered as one.
    pub uri: Option<String>,
}

impl License {
    pub fn of(stored: &str) -> Self {
        let is_uri = stored.starts_with("http://") || stored.starts_with("https://");
        if !is_uri {
            return License { name: stored.to_owned(), uri: None };
        }
        let known = NAMES.iter().find(|(tail, _)| stored.trim_end_matches('/').ends_with(tail));
        License { name: known.map_or(stored, |(_, name)| name).to_owned(), uri: Some(stored.to_owned()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcat_ap_de_uris_get_their_names_and_keep_the_uri() {
        let by = License::of("http://dcat-ap.de/def/licenses/dl-by-de/2.0");
        assert_eq!(by.name, "Datenlizenz Deutschland – Namensnennung 2.0");
        assert_eq!(by.uri.as_deref(), Some("http://dcat-ap.de/def/licenses/dl-by-de/2.0"));
        assert_eq!(
            License::of("http://dcat-ap.de/def/licenses/dl-zero-de/2.0").name,
            "Datenlizenz Deutschland – Zero 2.0"
        );
        assert_eq!(License::of("http://dcat-ap.de/def/licenses/cc-by/4.0/").name.as_str(), NAMES[3].1);
    }

    #[test]
    fn unknown_uris_and_contract_text_are_shown_as_they_are() {
        let other = License::of("https://example.org/licence");
        assert_eq!(
            (other.name.as_str(), other.uri.as_deref()),
            ("https://example.org/licence", Some("https://example.org/licence"))
        );
        let text = License::of("Nur zur internen Nutzung");
        assert_eq!((text.name.as_str(), text.uri), ("Nur zur internen Nutzung", None));
    }
}
