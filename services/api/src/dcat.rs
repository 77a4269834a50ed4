//! The open data catalog as RDF (DCAT-AP.de 3.0), built as a graph with
//! oxrdf and written with oxrdfio as Turtle, RDF/XML or JSON-LD; pure (the
//! facts come from `hoheit_store::catalog`), so it is tested without a server.
//!
//! One `dcat:Catalog`; one `dcat:Dataset` per open dataset with publisher
//! (`foaf:Agent`), contact point (vCard), EU data theme, keywords, spatial
//! (bounding box as WKT) and temporal coverage, update frequency, and three
//! distributions: CSV and JSON downloads and the SensorThings API, which is
//! also described as a `dcat:DataService`.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use hoheit_store::catalog::{BoundingBox, CatalogEntry};
use oxrdf::vocab::{rdf, xsd};
use oxrdf::{BlankNode, Graph, Literal, NamedNode, NamedOrBlankNode, Term, Triple};
use oxrdfio::{JsonLdProfileSet, RdfFormat, RdfSerializer};

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const FOAF: &str = "http://xmlns.com/foaf/0.1/";
const VCARD: &str = "http://www.w3.org/2006/vcard/ns#";
const DCATDE: &str = "http://dcat-ap.de/def/dcatde/";
const LOCN: &str = "http://www.w3.org/ns/locn#";
const GSP: &str = "http://www.opengis.net/ont/geosparql#";
const THEME: &str = "http://publications.europa.eu/resource/authority/data-theme/";
const FREQUENCY: &str = "http://publications.europa.eu/resource/authority/frequency/";
const FILE_TYPE: &str = "http://publications.europa.eu/resource/authority/file-type/";
const LANGUAGE_DEU: &str = "http://publications.europa.eu/resource/authority/language/DEU";
const MEDIA_TYPE: &str = "http://www.iana.org/assignments/media-types/";
const STA_SPEC: &str = "http://www.opengis.net/doc/is/sensorthings/1.1";

/// Path of the SensorThings API endpoint the catalog announces.
pub const STA_PATH: &str = "/sta/v1.1";

/// The RDF serialisations the catalog is offered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    Turtle,
    RdfXml,
    JsonLd,
}

impl CatalogFormat {
    pub const ALL: [CatalogFormat; 3] = [CatalogFormat::Turtle, CatalogFormat::RdfXml, CatalogFormat::JsonLd];

    pub fn media_type(self) -> &'static str {
        match self {
            CatalogFormat::Turtle => "text/turtle",
            CatalogFormat::RdfXml => "application/rdf+xml",
            CatalogFormat::JsonLd => "application/ld+json",
        }
    }

    fn rdf_format(self) -> RdfFormat {
        match self {
            CatalogFormat::Turtle => RdfFormat::Turtle,
            CatalogFormat::RdfXml => RdfFormat::RdfXml,
            CatalogFormat::JsonLd => RdfFormat::JsonLd { profile: JsonLdProfileSet::empty() },
        }
    }

    /// Picks the format for an `Accept` header: the supported type with the
    /// highest q-value (`*/*`, `text/*` and `application/*` count); Turtle
    /// when there is no header. `None`: nothing acceptable is offered.
    pub fn negotiate(accept: Option<&str>) -> Option<CatalogFormat> {
        let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
            return Some(CatalogFormat::Turtle);
        };
        let mut best: Option<(f32, usize, CatalogFormat)> = None;
        for (position, range) in accept.split(',').enumerate() {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 || !q.is_finite() {
                continue;
            }
            let candidate = match media.as_str() {
                "*/*" | "text/*" => Some(CatalogFormat::Turtle),
                "application/*" => Some(CatalogFormat::JsonLd),
                m => Self::ALL.into_iter().find(|f| f.media_type() == m),
            };
            // Exact types win over wildcards of the same q; then the earlier one.
            let rank = if media.contains('*') { position + 1000 } else { position };
            if let Some(format) = candidate {
                if best.is_none_or(|(bq, br, _)| q > bq || (q == bq && rank < br)) {
                    best = Some((q, rank, format));
                }
            }
        }
        best.map(|(_, _, f)| f)
    }
}

/// Who publishes the catalog (the municipality running the platform).
#[derive(Debug, Clone)]
pub struct CatalogPublisher {
    pub slug: String,
    pub name: String,
}

fn iri(text: &str) -> NamedNode {
    // Our IRIs are built from a validated base and slugs; the fallback keeps
    // a malformed stored value from failing the whole catalog.
    NamedNode::new(text).unwrap_or_else(|_| NamedNode::new_unchecked("urn:hoheit:invalid-iri"))
}

fn term(ns: &str, local: &str) -> NamedNode {
    iri(&format!("{ns}{local}"))
}

fn de(text: &str) -> Literal {
    Literal::new_language_tagged_literal_unchecked(text, "de")
}

fn date_time(t: DateTime<Utc>) -> Literal {
    Literal::new_typed_literal(t.to_rfc3339_opts(SecondsFormat::Secs, true), xsd::DATE_TIME)
}

/// An http(s) IRI, or `None` (a license stored as free text is not an IRI).
fn http_iri(text: &str) -> Option<NamedNode> {
    let text = text.trim();
    (text.starts_with("http://") || text.starts_with("https://")).then(|| NamedNode::new(text).ok()).flatten()
}

/// Licenses whose terms require naming the source (Datenlizenz Deutschland
/// Namensnennung, Creative Commons BY and BY-SA).
fn requires_attribution(license: &str) -> bool {
    ["/dl-by-de/", "/cc-by/", "/cc-by-sa/", "/cc-by-nd/", "/cc-by-nc/"].iter().any(|l| license.contains(l))
}

/// Hoheit's theme (an EU data theme URI, its code, or a plain word) as an EU data theme URI.
pub fn theme_uri(theme: &str) -> Option<String> {
    let theme = theme.trim();
    if let Some(code) = theme.strip_prefix(THEME) {
        return Some(format!("{THEME}{code}"));
    }
    const CODES: [&str; 13] =
        ["AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "REGI", "SOCI", "TECH", "TRAN"];
    let upper = theme.to_ascii_uppercase();
    if CODES.contains(&upper.as_str()) {
        return Some(format!("{THEME}{upper}"));
    }
    let code = match theme.to_lowercase().as_str() {
        "transport" | "traffic" | "mobility" | "parking" | "verkehr" | "mobilität" | "parken" => "TRAN",
        "environment" | "air" | "air quality" | "weather" | "water" | "climate" | "umwelt" | "luft" | "wetter"
        | "wasser" | "klima" => "ENVI",
        "energy" | "energie" => "ENER",
        "health" | "gesundheit" => "HEAL",
        "economy" | "finance" | "wirtschaft" | "finanzen" => "ECON",
        "education" | "culture" | "sport" | "bildung" | "kultur" => "EDUC",
        "government" | "public sector" | "verwaltung" => "GOVE",
        "society" | "population" | "gesellschaft" | "bevölkerung" => "SOCI",
        "regions" | "cities" | "urban" | "regionen" | "städte" => "REGI",
        "science" | "technology" | "wissenschaft" | "technologie" => "TECH",
        "agriculture" | "landwirtschaft" => "AGRI",
        "justice" | "justiz" => "JUST",
        "international" => "INTR",
        _ => return None,
    };
    Some(format!("{THEME}{code}"))
}

/// EU frequency: continuous while readings keep arriving, else unknown.
fn frequency(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> &'static str {
    match last {
        Some(t) if now - t <= Duration::days(1) => "CONT",
        _ => "UNKNOWN",
    }
}

fn wkt(b: &BoundingBox) -> String {
    // A single point becomes a tiny box, so that the polygon is valid.
    let pad = |lo: f64, hi: f64| if hi - lo < 1e-6 { (lo - 5e-6, hi + 5e-6) } else { (lo, hi) };
    let (w, e) = pad(b.min_lon, b.max_lon);
    let (s, n) = pad(b.min_lat, b.max_lat);
    format!("POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))")
}

struct Builder {
    graph: Graph,
}

impl Builder {
    fn add(&mut self, s: impl Into<NamedOrBlankNode>, p: NamedNode, o: impl Into<Term>) {
        self.graph.insert(&Triple::new(s, p, o));
    }

    fn agent(&mut self, base: &str, slug: &str, name: &str) -> NamedNode {
        let agent = iri(&format!("{base}/opendata/organisations/{slug}"));
        self.add(agent.clone(), rdf::TYPE.into(), term(FOAF, "Agent"));
        self.add(agent.clone(), term(FOAF, "name"), de(name));
        agent
    }
}

/// Public URLs of an open dataset's downloads.
pub fn download_url(base: &str, slug: &str, extension: &str) -> String {
    format!("{base}/opendata/datasets/{slug}.{extension}")
}

/// The catalog graph. `base` is the public URL of the API without a trailing slash.
pub fn catalog_graph(base: &str, publisher: &CatalogPublisher, entries: &[CatalogEntry], now: DateTime<Utc>) -> Graph {
    let mut b = Builder { graph: Graph::new() };
    let catalog = iri(&format!("{base}/opendata/catalog"));
    let sta = iri(&format!("{base}{STA_PATH}"));
    let catalog_agent = b.agent(base, &publisher.slug, &publisher.name);
    b.add(catalog.clone(), rdf::TYPE.into(), term(DCAT, "Catalog"));
    b.add(catalog.clone(), term(DCT, "title"), de(&format!("Offene Daten: {}", publisher.name)));
    b.add(
        catalog.clone(),
        term(DCT, "description"),
        de(&format!(
            "Offene Sensordaten der urbanen Datenplattform von {} (Hoheit): Messreihen als CSV und JSON und über die OGC SensorThings API.",
            publisher.name
        )),
    );
    b.add(catalog.clone(), term(DCT, "publisher"), catalog_agent.clone());
    b.add(catalog.clone(), term(FOAF, "homepage"), iri(&format!("{base}/docs")));
    b.add(catalog.clone(), term(DCT, "language"), iri(LANGUAGE_DEU));
    b.add(catalog.clone(), term(DCT, "modified"), date_time(now));
    b.add(catalog.clone(), term(DCAT, "service"), sta.clone());

    b.add(sta.clone(), rdf::TYPE.into(), term(DCAT, "DataService"));
    b.add(sta.clone(), term(DCT, "title"), de("OGC SensorThings API 1.1"));
    b.add(
        sta.clone(),
        term(DCT, "description"),
        de("Lesender Zugriff auf Things, Datastreams und Observations der offenen Datensätze nach OGC SensorThings API 1.1."),
    );
    b.add(sta.clone(), term(DCAT, "endpointURL"), sta.clone());
    b.add(sta.clone(), term(DCT, "publisher"), catalog_agent);
    b.add(sta.clone(), term(DCT, "conformsTo"), iri(STA_SPEC));

    for entry in entries {
        let d = &entry.dataset;
        let dataset = iri(&format!("{base}/opendata/datasets/{}", d.slug));
        b.add(catalog.clone(), term(DCAT, "dataset"), dataset.clone());
        b.add(sta.clone(), term(DCAT, "servesDataset"), dataset.clone());
        b.add(dataset.clone(), rdf::TYPE.into(), term(DCAT, "Dataset"));
        b.add(dataset.clone(), term(DCT, "identifier"), Literal::new_simple_literal(dataset.as_str()));
        b.add(dataset.clone(), term(DCT, "title"), de(&d.title));
        let description = if d.description.trim().is_empty() { &d.title } else { &d.description };
        b.add(dataset.clone(), term(DCT, "description"), de(description));
        let owner = b.agent(base, &d.owner, &entry.owner_name);
        b.add(dataset.clone(), term(DCT, "publisher"), owner);
        b.add(dataset.clone(), term(DCT, "issued"), date_time(d.created_at));
        if let Some(last) = entry.last {
            b.add(dataset.clone(), term(DCT, "modified"), date_time(last));
        }

        let contact = iri(&format!("{base}/opendata/datasets/{}#contact", d.slug));
        b.add(dataset.clone(), term(DCAT, "contactPoint"), contact.clone());
        // vcard:Kind stated too: validators do not infer it from the subclass.
        b.add(contact.clone(), rdf::TYPE.into(), term(VCARD, "Kind"));
        b.add(contact.clone(), rdf::TYPE.into(), term(VCARD, "Organization"));
        b.add(contact.clone(), term(VCARD, "fn"), de(&format!("Datenverantwortliche Stelle: {}", entry.owner_name)));
        let steward = d.steward_contact.trim();
        if steward.contains('@') && !steward.contains(char::is_whitespace) {
            b.add(contact.clone(), term(VCARD, "hasEmail"), iri(&format!("mailto:{steward}")));
        } else if let Some(url) = http_iri(steward) {
            b.add(contact.clone(), term(VCARD, "hasURL"), url);
        }

        if let Some(theme) = theme_uri(&d.theme) {
            b.add(dataset.clone(), term(DCAT, "theme"), iri(&theme));
        }
        for keyword in &entry.properties {
            b.add(dataset.clone(), term(DCAT, "keyword"), de(keyword));
        }
        b.add(dataset.clone(), term(DCT, "accrualPeriodicity"), term(FREQUENCY, frequency(entry.last, now)));

        if let Some(bbox) = &entry.bbox {
            let location = BlankNode::default();
            b.add(dataset.clone(), term(DCT, "spatial"), location.clone());
            b.add(location.clone(), rdf::TYPE.into(), term(DCT, "Location"));
            b.add(location.clone(), term(DCAT, "bbox"), Literal::new_typed_literal(wkt(bbox), term(GSP, "wktLiteral")));
        }
        if let (Some(first), Some(last)) = (entry.first, entry.last) {
            let period = BlankNode::default();
            b.add(dataset.clone(), term(DCT, "temporal"), period.clone());
            b.add(period.clone(), rdf::TYPE.into(), term(DCT, "PeriodOfTime"));
            b.add(period.clone(), term(DCAT, "startDate"), date_time(first));
            b.add(period, term(DCAT, "endDate"), date_time(last));
        }

        let license = http_iri(&d.license);
        let attribution = requires_attribution(&d.license).then(|| entry.owner_name.clone());
        let distributions = [
            ("csv", "CSV", "text/csv", "CSV-Download"),
            ("json", "JSON", "application/json", "JSON-Download"),
            ("sta", "", "", "OGC SensorThings API"),
        ];
        for (key, file_type, media, label) in distributions {
            let distribution = iri(&format!("{base}/opendata/datasets/{}#{key}", d.slug));
            b.add(dataset.clone(), term(DCAT, "distribution"), distribution.clone());
            b.add(distribution.clone(), rdf::TYPE.into(), term(DCAT, "Distribution"));
            b.add(distribution.clone(), term(DCT, "title"), de(&format!("{label}: {}", d.title)));
            if key == "sta" {
                b.add(distribution.clone(), term(DCAT, "accessURL"), sta.clone());
                b.add(distribution.clone(), term(DCAT, "accessService"), sta.clone());
            } else {
                let url = iri(&download_url(base, &d.slug, key));
                b.add(distribution.clone(), term(DCAT, "accessURL"), url.clone());
                b.add(distribution.clone(), term(DCAT, "downloadURL"), url);
                b.add(distribution.clone(), term(DCT, "format"), term(FILE_TYPE, file_type));
                b.add(distribution.clone(), term(DCAT, "mediaType"), iri(&format!("{MEDIA_TYPE}{media}")));
            }
            if let Some(license) = &license {
                b.add(distribution.clone(), term(DCT, "license"), license.clone());
            }
            if let Some(text) = &attribution {
                b.add(distribution.clone(), term(DCATDE, "licenseAttributionByText"), de(text));
            }
        }
    }
    b.graph
}

/// Errors writing the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("writing the catalog as {format}: {source}")]
    Serialize { format: &'static str, source: std::io::Error },
}

/// Writes the graph in `format`, with the usual prefixes where the format has them.
pub fn serialize(graph: &Graph, format: CatalogFormat) -> Result<Vec<u8>, CatalogError> {
    let error = |source| CatalogError::Serialize { format: format.media_type(), source };
    let mut serializer = RdfSerializer::from_format(format.rdf_format());
    if format != CatalogFormat::JsonLd {
        for (prefix, ns) in [
            ("dcat", DCAT),
            ("dct", DCT),
            ("foaf", FOAF),
            ("vcard", VCARD),
            ("dcatde", DCATDE),
            ("locn", LOCN),
            ("gsp", GSP),
        ] {
            serializer = serializer
                .with_prefix(prefix, ns)
                .map_err(|e| error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        }
    }
    let mut writer = serializer.for_writer(Vec::new());
    for triple in graph.iter() {
        writer.serialize_triple(triple).map_err(error)?;
    }
    writer.finish().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values_and_defaults_to_turtle() {
        use CatalogFormat::*;
        assert_eq!(CatalogFormat::negotiate(None), Some(Turtle));
        assert_eq!(CatalogFormat::negotiate(Some("application/ld+json")), Some(JsonLd));
        assert_eq!(CatalogFormat::negotiate(Some("application/rdf+xml;q=0.9, text/turtle;q=0.5")), Some(RdfXml));
        assert_eq!(CatalogFormat::negotiate(Some("text/html, */*;q=0.1")), Some(Turtle));
        assert_eq!(CatalogFormat::negotiate(Some("text/html")), None);
        assert_eq!(CatalogFormat::negotiate(Some("text/turtle;q=0")), None);
    }

    #[test]
    fn themes_map_to_the_eu_vocabulary() {
        assert_eq!(
            theme_uri("transport").as_deref(),
            Some("http://publications.europa.eu/resource/authority/data-theme/TRAN")
        );
        assert_eq!(
            theme_uri("ENVI").as_deref(),
            Some("http://publications.europa.eu/resource/authority/data-theme/ENVI")
        );
        assert_eq!(
            theme_uri("http://publications.europa.eu/resource/authority/data-theme/ENER").as_deref(),
            Some("http://publications.europa.eu/resource/authority/data-theme/ENER")
        );
        assert_eq!(theme_uri("something else"), None);
    }

    #[test]
    fn attribution_is_required_by_name_licenses_only() {
        assert!(requires_attribution("http://dcat-ap.de/def/licenses/dl-by-de/2.0"));
        assert!(requires_attribution("http://dcat-ap.de/def/licenses/cc-by/4.0"));
        assert!(!requires_attribution("http://dcat-ap.de/def/licenses/dl-zero-de/2.0"));
    }
}
