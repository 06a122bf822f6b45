//! `academy questions import`: loads questions into the bank from CSV or JSON, idempotently.
//!
//! Each question is keyed by its `external_id`: importing a file again adds the new questions, edits those whose
//! content changed (an edit event, the old version stays in the log) and leaves the others alone. Retired
//! questions are not touched. Rows that cannot be imported are reported with their line numbers; the others go
//! in regardless.
//!
//! CSV: a header row `external_id,level,topic,question,reference_answer,key_points`, where `key_points` lists
//! key points separated by `;`, each a concept followed by its synonyms separated by `|`:
//! `single owner | one owner ; borrowing | reference`.
//!
//! JSON: an array of objects with `external_id`, `level`, `topic`, `question`, `reference_answer` and
//! `key_points: [{"concept": "...", "synonyms": ["..."]}]`.

use std::collections::HashMap;

use commands::trainer::Trainer;
use commands::{Actor, CommandError, Request, Source};
use domain::trainer::{KeyPoint, Level, QuestionContent, QuestionEvent};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The starter bank shipped with Academy, loaded with `academy questions import --starter`.
pub const STARTER_BANK: &str = include_str!("starter_questions.csv");

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// From a file name's extension.
    pub fn of(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A question read from a file, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: u64,
    pub external_id: String,
    pub content: QuestionContent,
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub added: usize,
    pub edited: usize,
    pub unchanged: usize,
    pub bad: Vec<BadRow>,
}

#[derive(Debug, Deserialize)]
struct JsonQuestion {
    external_id: String,
    level: String,
    topic: String,
    question: String,
    reference_answer: String,
    key_points: Vec<KeyPoint>,
}

/// Reads every row of a file's `bytes`, as [`parse`] does; a line that is not UTF-8 is a bad row of its own,
/// and every other line keeps its number.
pub fn read(bytes: &[u8], format: Format) -> (Vec<Row>, Vec<BadRow>) {
    let mut text = String::with_capacity(bytes.len());
    let mut unreadable = Vec::new();
    for (index, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        match std::str::from_utf8(line) {
            Ok(line) => text.push_str(line),
            Err(error) => {
                unreadable.push(BadRow {
                    line: index as u64 + 1,
                    reason: format!(
                        "not UTF-8 (an invalid byte at column {})",
                        error.valid_up_to() + 1
                    ),
                });
                // read on with the line as it would be shown, so the parser counts it; its row is dropped
                text.push_str(&String::from_utf8_lossy(line));
            }
        }
    }
    let (mut rows, mut bad) = parse(&text, format);
    let is_unreadable = |line: u64| unreadable.iter().any(|u| u.line == line);
    rows.retain(|row| !is_unreadable(row.line));
    bad.retain(|row| !is_unreadable(row.line));
    bad.extend(unreadable);
    bad.sort_by_key(|b| b.line);
    (rows, bad)
}

/// Reads every row of `text`; rows that do not parse are returned as bad rows, with their line numbers.
pub fn parse(text: &str, format: Format) -> (Vec<Row>, Vec<BadRow>) {
    let (rows, mut bad) = match format {
        Format::Csv => parse_csv(text),
        Format::Json => parse_json(text),
    };
    // a second row with an external id already seen would silently overwrite the first: refuse it
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut unique = Vec::with_capacity(rows.len());
    for row in rows {
        match seen.get(&row.external_id) {
            Some(first) => bad.push(BadRow {
                line: row.line,
                reason: format!("external_id {:?} repeats line {first}", row.external_id),
            }),
            None => {
                seen.insert(row.external_id.clone(), row.line);
                unique.push(row);
            }
        }
    }
    bad.sort_by_key(|b| b.line);
    (unique, bad)
}

fn parse_csv(text: &str) -> (Vec<Row>, Vec<BadRow>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let expected = [
        "external_id",
        "level",
        "topic",
        "question",
        "reference_answer",
        "key_points",
    ];
    match reader.headers() {
        Ok(headers) if headers.iter().map(str::trim).eq(expected) => {}
        Ok(headers) => {
            let got: Vec<&str> = headers.iter().collect();
            return (
                vec![],
                vec![BadRow {
                    line: 1,
                    reason: format!(
                        "the header must be {}; got {}",
                        expected.join(","),
                        got.join(",")
                    ),
                }],
            );
        }
        Err(error) => {
            return (
                vec![],
                vec![BadRow {
                    line: 1,
                    reason: format!("unreadable header: {error}"),
                }],
            );
        }
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, |p| p.line());
                bad.push(BadRow {
                    line,
                    reason: format!("unreadable row: {error}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if let Some(swallowed) = swallowed_row(&record, line) {
            bad.push(BadRow {
                line,
                reason: format!(
                    "a quoted field runs on into line {swallowed}, which looks like a row of its own \
                     (a stray quote?): neither is imported"
                ),
            });
            continue;
        }
        if record.len() != expected.len() {
            bad.push(BadRow {
                line,
                reason: format!("expected {} fields, found {}", expected.len(), record.len()),
            });
            continue;
        }
        let key_points = record[5]
            .split(';')
            .filter(|p| !p.trim().is_empty())
            .map(|point| {
                let mut parts = point.split('|').map(str::trim);
                KeyPoint {
                    concept: parts.next().unwrap_or_default().to_owned(),
                    synonyms: parts.map(str::to_owned).collect(),
                }
            })
            .collect();
        match row(
            line, &record[0], &record[1], &record[2], &record[3], &record[4], key_points,
        ) {
            Ok(row) => rows.push(row),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    (rows, bad)
}

/// The first line inside a quoted field of `record` (which starts on `line`) that looks like the start of a row
/// of its own (`<id>,<level>,`): a stray quote made the parser read on into the next rows.
fn swallowed_row(record: &csv::StringRecord, line: u64) -> Option<u64> {
    let mut lines_before = 0;
    for field in record {
        for (n, inner) in field.split('\n').enumerate().skip(1) {
            let mut cells = inner.split(',');
            let id = cells.next().unwrap_or_default().trim();
            let level = cells.next().map(str::trim);
            let row_start = !id.is_empty() && level.is_some_and(|l| Level::parse(l).is_ok());
            if row_start {
                return Some(line + lines_before + n as u64);
            }
        }
        lines_before += field.matches('\n').count() as u64;
    }
    None
}

fn parse_json(text: &str) -> (Vec<Row>, Vec<BadRow>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let items: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(items) => items,
        Err(error) => {
            return (
                vec![],
                vec![BadRow {
                    line: error.line() as u64,
                    reason: format!("not a JSON array of questions: {error}"),
                }],
            );
        }
    };
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for item in items {
        // the item is a slice of `text`: its offset gives its line
        let offset = item.get().as_ptr() as usize - text.as_ptr() as usize;
        let line = text[..offset].bytes().filter(|b| *b == b'\n').count() as u64 + 1;
        let parsed: JsonQuestion = match serde_json::from_str(item.get()) {
            Ok(parsed) => parsed,
            Err(error) => {
                bad.push(BadRow {
                    line: line + error.line() as u64 - 1,
                    reason: error.to_string(),
                });
                continue;
            }
        };
        match row(
            line,
            &parsed.external_id,
            &parsed.level,
            &parsed.topic,
            &parsed.question,
            &parsed.reference_answer,
            parsed.key_points,
        ) {
            Ok(row) => rows.push(row),
            Err(reason) => bad.push(BadRow { line, reason }),
        }
    }
    (rows, bad)
}

fn row(
    line: u64,
    external_id: &str,
    level: &str,
    topic: &str,
    question: &str,
    reference_answer: &str,
    key_points: Vec<KeyPoint>,
) -> Result<Row, String> {
    let external_id = external_id.trim();
    if external_id.is_empty() || external_id.chars().count() > 200 {
        return Err("external_id must have 1 to 200 characters".to_owned());
    }
    let level = Level::parse(level).map_err(|e| e.to_string())?;
    let content = QuestionContent::parse(level, topic, question, reference_answer, key_points)
        .map_err(|e| e.to_string())?;
    Ok(Row {
        line,
        external_id: external_id.to_owned(),
        content,
    })
}

/// Imports `rows` (one command each), counting what changed; a row the log refuses becomes a bad row.
pub async fn import(trainer: &Trainer, rows: Vec<Row>, progress: &ProgressBar) -> Report {
    let mut report = Report::default();
    // a fresh command id per question (the request has no idempotency key)
    let request = Request::new(
        Actor::System { name: "import" },
        Source::Cli,
        chrono::Utc::now(),
    );
    for row in rows {
        match trainer
            .import_question(&request, &row.external_id, row.content)
            .await
        {
            Ok(changed) => match changed.events.first() {
                Some(QuestionEvent::QuestionAdded { .. }) => report.added += 1,
                Some(_) => report.edited += 1,
                None => report.unchanged += 1,
            },
            Err(error) => {
                let reason = match error {
                    CommandError::Rejected(rule) => rule.to_string(),
                    other => {
                        tracing::error!(error = %other, "import failed");
                        format!("could not be stored: {other}")
                    }
                };
                report.bad.push(BadRow {
                    line: row.line,
                    reason,
                });
            }
        }
        progress.inc(1);
    }
    report
}

/// A progress bar for `total` questions.
pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total).with_message("importing questions");
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_bank_parses_whole_with_every_level() {
        let (rows, bad) = parse(STARTER_BANK, Format::Csv);
        assert!(bad.is_empty(), "{bad:?}");
        assert!(rows.len() >= 60);
        for level in Level::ALL {
            assert!(rows.iter().filter(|r| r.content.level == level).count() >= 20);
        }
    }

    #[test]
    fn the_reference_answer_of_every_starter_question_is_graded_correct() {
        let (rows, _) = parse(STARTER_BANK, Format::Csv);
        let failures: Vec<String> = rows
            .iter()
            .filter_map(|row| {
                let content = &row.content;
                let answer = &content.reference_answer;
                let grade = commands::checker::grade(answer, answer, &content.key_points);
                (grade.verdict != domain::trainer::Verdict::Correct)
                    .then(|| format!("{}: {grade:?}", row.external_id))
            })
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn bad_csv_rows_are_reported_with_their_lines() {
        let text = "external_id,level,topic,question,reference_answer,key_points\n\
                    q1,junior,rust,What?,Because.,owner | single owner\n\
                    q2,lead,rust,What?,Because.,owner\n\
                    q3,junior,rust,What?,Because.,\n\
                    q1,junior,rust,Again?,Because.,owner\n\
                    q4,junior,rust\n\
                    \"q5,junior,rust,\"What?\",x,y\n";
        let (rows, bad) = parse(text, Format::Csv);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].content.key_points[0].synonyms, ["single owner"]);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7], "{bad:?}");
        assert!(bad[0].reason.contains("junior, middle or senior"));
        assert!(bad[1].reason.contains("key points"));
        assert!(bad[2].reason.contains("repeats line 2"));
        assert!(bad[3].reason.contains("expected 6 fields"));
    }

    #[test]
    fn a_stray_quote_that_swallows_the_next_rows_is_a_bad_row() {
        let text = "external_id,level,topic,question,reference_answer,key_points\n\
                    q1,junior,rust,What?,\"Because.,owner\n\
                    q2,junior,rust,Why?,Because.,owner\n\
                    q3,junior,rust,How?,Because.,owner\n";
        let (rows, bad) = parse(text, Format::Csv);
        assert!(rows.is_empty(), "{rows:?}");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].line, 2);
        assert!(bad[0].reason.contains("line 3"), "{}", bad[0].reason);
        // a field that truly spans lines is fine
        let text = "external_id,level,topic,question,reference_answer,key_points\n\
                    q1,junior,rust,What?,\"Because:\nit is so.\",owner\n";
        let (rows, bad) = parse(text, Format::Csv);
        assert_eq!((rows.len(), bad.len()), (1, 0), "{bad:?}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_a_bad_row_and_the_others_are_read() {
        let mut bytes = b"external_id,level,topic,question,reference_answer,key_points\n".to_vec();
        bytes.extend_from_slice(b"q1,junior,rust,What?,Because.,owner\n");
        bytes.extend_from_slice(b"q2,junior,rust,Wh\xff?,Because.,owner\n");
        bytes.extend_from_slice(b"q3,junior,rust,How?,Because.,owner\n");
        let (rows, bad) = read(&bytes, Format::Csv);
        let ids: Vec<&str> = rows.iter().map(|r| r.external_id.as_str()).collect();
        assert_eq!(ids, ["q1", "q3"]);
        assert_eq!(rows[1].line, 4, "later lines keep their numbers");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].line, 3);
        assert!(bad[0].reason.contains("not UTF-8"));
    }

    #[test]
    fn a_wrong_header_is_one_clear_error() {
        let (rows, bad) = parse("id,text\n1,x\n", Format::Csv);
        assert!(rows.is_empty());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].reason.contains("the header must be"));
    }

    #[test]
    fn json_items_are_reported_with_their_lines() {
        let text = r#"[
  {"external_id": "j1", "level": "middle", "topic": "sql", "question": "Q?", "reference_answer": "A.",
   "key_points": [{"concept": "index", "synonyms": ["b-tree"]}]},
  {"external_id": "j2", "level": "middle", "topic": "sql", "question": "Q?", "reference_answer": "A.",
   "key_points": []},
  {"external_id": "j3", "level": "middle"}
]"#;
        let (rows, bad) = parse(text, Format::Json);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].line, 2);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [4, 6], "{bad:?}");
        let (rows, bad) = parse("{not json", Format::Json);
        assert!(rows.is_empty());
        assert_eq!(bad[0].line, 1);
    }
}
