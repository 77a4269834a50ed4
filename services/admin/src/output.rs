//! How commands print: aligned tables and sentences for people, or one JSON
//! document per command with `--json` for scripts. Everything goes to the
//! writer the caller gives (stdout in the binary, a buffer in tests); logs and
//! errors go to stderr, so stdout stays parseable.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::AdminError;

/// The destination of a command's result.
pub struct Output<'a> {
    writer: &'a mut dyn Write,
    json: bool,
}

impl<'a> Output<'a> {
    pub fn new(writer: &'a mut dyn Write, json: bool) -> Self {
        Self { writer, json }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON with `--json`, else runs `human`.
    pub fn show<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        human: impl FnOnce(&mut Self) -> Result<(), AdminError>,
    ) -> Result<(), AdminError> {
        if self.json {
            self.json(value)
        } else {
            human(self)
        }
    }

    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), AdminError> {
        serde_json::to_writer_pretty(&mut *self.writer, value).map_err(std::io::Error::from)?;
        writeln!(self.writer)?;
        Ok(())
    }

    pub fn line(&mut self, text: impl std::fmt::Display) -> Result<(), AdminError> {
        writeln!(self.writer, "{text}")?;
        Ok(())
    }

    pub fn table(&mut self, table: &Table) -> Result<(), AdminError> {
        self.writer.write_all(table.render().as_bytes())?;
        Ok(())
    }
}

/// A table with a header, columns separated by two spaces, the last column
/// unpadded. Cells are made single-line so every row stays one line.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(|c| single_line(&c.into())).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.header.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut widths = vec![0usize; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn single_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A time as people and `date -d` read it: RFC 3339, whole seconds, UTC.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An optional value, or "-".
pub fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_keep_rows_on_one_line() {
        let mut t = Table::new(&["id", "name", "kind"]);
        t.row(["1", "Stadt Eberswalde", "municipality"]);
        t.row(["12", "Umweltamt\nzweite Zeile", "department"]);
        assert_eq!(
            t.render(),
            "id  name                    kind\n\
             1   Stadt Eberswalde        municipality\n\
             12  Umweltamt zweite Zeile  department\n"
        );
    }

    #[test]
    fn json_mode_prints_the_value_and_skips_the_human_form() {
        let mut buffer = Vec::new();
        let mut out = Output::new(&mut buffer, true);
        out.show(&serde_json::json!({"a": 1}), |o| o.line("human")).unwrap();
        let text = String::from_utf8(buffer).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["a"], 1);
        assert!(!text.contains("human"));
    }
}
