//! Bulk registration's rows, pure: a CSV file (header row; columns `slug`,
//! `name`, `latitude`, `longitude`, `type`, `external_id` (also `dev_eui`,
//! `deveui`, `DevEUI`), `dataset`) or a JSON array of objects with the same
//! keys, parsed into [`ImportRow`]s. Every bad row is reported with its line
//! (CSV: the file's line, the header is line 1; JSON: the 1-based index) and
//! column; what needs the registry (does the type exist?) is checked by
//! `hoheit-store`'s import.

use std::collections::HashMap;

use serde::Serialize;

use crate::Slug;

/// At most this many rows in one import.
pub const MAX_ROWS: usize = 100_000;

/// One thing as an import file describes it; `None` means "not given".
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub line: usize,
    pub slug: Slug,
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub device_type: Option<Slug>,
    /// As written; `hoheit-store` normalises it as it stores external ids.
    pub external_id: Option<String>,
    pub dataset: Option<Slug>,
}

/// What is wrong with one row (or the file, at line 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    pub line: usize,
    /// The column at fault, if it is one column.
    pub column: Option<String>,
    pub reason: String,
}

impl RowError {
    pub fn new(line: usize, column: Option<&str>, reason: impl Into<String>) -> Self {
        Self { line, column: column.map(str::to_owned), reason: reason.into() }
    }
}

/// A file's rows that parsed and the faults of the others (sorted by line);
/// the registry's checks add theirs, so that one answer names every bad row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub rows: Vec<ImportRow>,
    pub errors: Vec<RowError>,
}

/// Why a file is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("more than {MAX_ROWS} rows; split the file")]
    TooManyRows,
    /// Every bad row (or the file's fault at line 1).
    #[error("{} row(s) cannot be imported", .0.len())]
    Rows(Vec<RowError>),
}

/// The columns an import knows, by the names a header may use.
fn column_of(header: &str) -> Option<&'static str> {
    Some(match header.trim() {
        "slug" => "slug",
        "name" => "name",
        "latitude" | "lat" => "latitude",
        "longitude" | "lon" | "lng" => "longitude",
        "type" => "type",
        "external_id" | "dev_eui" | "deveui" | "DevEUI" => "external_id",
        "dataset" => "dataset",
        _ => return None,
    })
}

/// Reads one row's cells (by column) into an [`ImportRow`], collecting every
/// fault into `errors`.
fn row(line: usize, cells: &HashMap<&'static str, String>, errors: &mut Vec<RowError>) -> Option<ImportRow> {
    let before = errors.len();
    let given = |column: &str| cells.get(column).map(|v| v.trim()).filter(|v| !v.is_empty());
    let slug_of = |column: &'static str, kind: &'static str, errors: &mut Vec<RowError>| {
        given(column).and_then(|v| {
            Slug::parse(kind, v).map_err(|e| errors.push(RowError::new(line, Some(column), e.to_string()))).ok()
        })
    };
    let slug = slug_of("slug", "slug", errors);
    if given("slug").is_none() {
        errors.push(RowError::new(line, Some("slug"), "slug is missing"));
    }
    let device_type = slug_of("type", "type", errors);
    let dataset = slug_of("dataset", "dataset", errors);
    let name = given("name").map(str::to_owned);
    match &name {
        None => errors.push(RowError::new(line, Some("name"), "name is missing")),
        Some(n) if n.chars().count() > 200 => {
            errors.push(RowError::new(line, Some("name"), "name is longer than 200 characters"))
        }
        Some(_) => {}
    }
    let mut coordinate = |column: &'static str, limit: f64| {
        given(column).and_then(|v| match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x.abs() <= limit => Some(x),
            _ => {
                errors.push(RowError::new(
                    line,
                    Some(column),
                    format!("{column} {v:?} is not a number between -{limit} and {limit}"),
                ));
                None
            }
        })
    };
    let latitude = coordinate("latitude", 90.0);
    let longitude = coordinate("longitude", 180.0);
    if latitude.is_some() != longitude.is_some() && errors.len() == before {
        errors.push(RowError::new(line, None, "give both latitude and longitude, or neither"));
    }
    let external_id = given("external_id").map(str::to_owned);
    if errors.len() > before {
        return None;
    }
    Some(ImportRow { line, slug: slug?, name: name?, latitude, longitude, device_type, external_id, dataset })
}

/// The rows that parsed and every fault; a slug twice in the file is a
/// fault of its second row.
fn finish(mut rows: Vec<ImportRow>, mut errors: Vec<RowError>) -> Result<Parsed, Refusal> {
    if rows.len() + errors.len() > MAX_ROWS {
        return Err(Refusal::TooManyRows);
    }
    let mut seen: HashMap<Slug, usize> = HashMap::new();
    rows.retain(|row| match seen.get(&row.slug) {
        Some(first) => {
            errors.push(RowError::new(row.line, Some("slug"), format!("slug {} is also on line {first}", row.slug)));
            false
        }
        None => {
            seen.insert(row.slug.clone(), row.line);
            true
        }
    });
    errors.sort_by_key(|e| e.line);
    Ok(Parsed { rows, errors })
}

/// Parses a CSV import (RFC 4180: commas, double quotes, CRLF or LF; a
/// leading byte order mark is skipped).
pub fn parse_csv(text: &str) -> Result<Parsed, Refusal> {
    let file = |line, column: Option<&str>, reason: String| Refusal::Rows(vec![RowError::new(line, column, reason)]);
    let records = csv_records(text.strip_prefix('\u{feff}').unwrap_or(text))
        .map_err(|(line, reason)| file(line, None, reason))?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(file(1, None, "the file is empty; the first line names the columns".into()));
    };
    let mut columns = Vec::with_capacity(header.len());
    for name in &header {
        let column = column_of(name).ok_or_else(|| {
            let known = "slug, name, latitude, longitude, type, external_id (or dev_eui), dataset";
            file(1, Some(name.as_str()), format!("unknown column {name:?}; use {known}"))
        })?;
        if columns.contains(&column) {
            return Err(file(1, Some(column), format!("column {column} appears twice")));
        }
        columns.push(column);
    }
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    for (line, cells) in records {
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if cells.len() != columns.len() {
            errors.push(RowError::new(
                line,
                None,
                format!("{} cells, but the header names {} columns", cells.len(), columns.len()),
            ));
            continue;
        }
        let cells = columns.iter().copied().zip(cells).collect();
        rows.extend(row(line, &cells, &mut errors));
        if rows.len() + errors.len() > MAX_ROWS {
            break;
        }
    }
    finish(rows, errors)
}

/// Parses a JSON import: an array of objects with the CSV's column names as
/// keys (numbers for coordinates; `null` or absent means "not given").
pub fn parse_json(body: &[u8]) -> Result<Parsed, Refusal> {
    let objects: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(body)
        .map_err(|e| Refusal::Rows(vec![RowError::new(1, None, format!("expected a JSON array of objects: {e}"))]))?;
    if objects.len() > MAX_ROWS {
        return Err(Refusal::TooManyRows);
    }
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    for (index, object) in objects.into_iter().enumerate() {
        let line = index + 1;
        let mut cells = HashMap::new();
        let mut ok = true;
        for (key, value) in object {
            let Some(column) = column_of(&key) else {
                errors.push(RowError::new(line, Some(&key), format!("unknown key {key:?}")));
                ok = false;
                continue;
            };
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    errors.push(RowError::new(line, Some(column), format!("expected a string or number, not {other}")));
                    ok = false;
                    continue;
                }
            };
            cells.insert(column, text);
        }
        if ok {
            rows.extend(row(line, &cells, &mut errors));
        }
    }
    finish(rows, errors)
}

/// A CSV record's first line and its cells.
type Record = (usize, Vec<String>);

/// Splits CSV text into records with the line each starts on; an unclosed
/// quote is an error at the line it opened.
fn csv_records(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut line, mut start, mut quoted, mut quote_line) = (1, 1, false, 0);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() => {
                quoted = true;
                quote_line = line;
            }
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push((start, std::mem::take(&mut record)));
                line += 1;
                start = line;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err((quote_line, "a quoted cell is not closed".into()));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push((start, record));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_read_with_their_lines_and_header_aliases() {
        let text = "slug,name,latitude,longitude,type,DevEUI,dataset\r\n\
                    pm-1,\"Markt, Nord\",52.83,13.82,dl-pm,70B3D57ED0001234,luft\r\n\
                    pm-2,Bahnhof,,,,,\n";
        let Parsed { rows, errors } = parse_csv(text).unwrap();
        assert_eq!((rows.len(), errors), (2, vec![]));
        assert_eq!((rows[0].line, rows[0].name.as_str()), (2, "Markt, Nord"));
        assert_eq!(rows[0].external_id.as_deref(), Some("70B3D57ED0001234"));
        assert_eq!(rows[0].device_type.as_ref().map(Slug::as_str), Some("dl-pm"));
        assert_eq!((rows[1].line, rows[1].latitude, rows[1].device_type.clone()), (3, None, None));
    }

    #[test]
    fn every_bad_row_is_named_with_its_line_and_column() {
        let text =
            "slug,name,latitude,longitude\nok,Fine,1,2\nBAD SLUG,x,1,2\nno-name,,1,2\nfar,Far,91,2\nok,Again,,\n";
        let Parsed { rows, errors } = parse_csv(text).unwrap();
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2]);
        let found: Vec<(usize, Option<&str>)> = errors.iter().map(|e| (e.line, e.column.as_deref())).collect();
        assert_eq!(found, [(3, Some("slug")), (4, Some("name")), (5, Some("latitude")), (6, Some("slug"))]);
    }

    #[test]
    fn an_unknown_column_or_open_quote_rejects_the_file() {
        let first = |text| match parse_csv(text) {
            Err(Refusal::Rows(errors)) => (errors[0].line, errors[0].column.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(first("slug,colour\n"), (1, Some("colour".to_owned())));
        assert_eq!(first("slug,name\na,\"open\nb,c\n"), (2, None));
    }

    #[test]
    fn json_rows_take_numbers_and_nulls() {
        let body = br#"[{"slug":"a","name":"A","latitude":52.1,"longitude":13.2,"dev_eui":null},{"slug":"b"}]"#;
        assert_eq!(parse_json(body).unwrap().errors, [RowError::new(2, Some("name"), "name is missing")]);
        let rows =
            parse_json(br#"[{"slug":"a","name":"A","latitude":52.1,"longitude":13.2,"dev_eui":null}]"#).unwrap().rows;
        assert_eq!((rows[0].latitude, rows[0].external_id.clone()), (Some(52.1), None));
    }
}
