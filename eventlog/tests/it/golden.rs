//! Stored events stay readable: `tests/golden/` holds a stored example of every event type at every schema
//! version (`<Type>.v<N>.json`: type, schema version, data, metadata), written once by the code of its day and
//! frozen. Every file must decode with today's code, and every event type must have its files. No database.
//!
//! The convention these files keep is in the module docs of `domain::event`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use domain::DomainEvent;
use domain::cars::{CarEvent, ScrapeRunEvent};
use domain::identity::{AccountEvent, ClaimEvent};
use domain::inbox::InboxEvent;
use domain::interviews::{CalendarEvent, LedgerEvent, SlotEvent};
use domain::tracks::{DiaryEvent, TrackEvent};
use domain::trainer::{QuestionEvent, TraineeEvent};
use eventlog::{Metadata, NewEvent};
use serde_json::Value;

/// What a golden file decodes to: the event's `Debug` form, and the version and data today's code writes it
/// with.
struct Decoded {
    event: String,
    current_version: i32,
    written: Value,
}

/// One enum of domain events.
struct Family {
    name: &'static str,
    types: &'static [&'static str],
    decode: fn(&str, i32, Value) -> Result<Decoded, String>,
}

/// Every enum of domain events: an enum missing here fails `every_event_enum_is_listed`.
const FAMILIES: &[Family] = &[
    family::<AccountEvent>("AccountEvent", AccountEvent::TYPES),
    // ClaimEvent's hand-written impl has no TYPES const: its one type is listed here
    family::<ClaimEvent>("ClaimEvent", &["IdentifierClaimed"]),
    family::<QuestionEvent>("QuestionEvent", QuestionEvent::TYPES),
    family::<TraineeEvent>("TraineeEvent", TraineeEvent::TYPES),
    family::<CarEvent>("CarEvent", CarEvent::TYPES),
    family::<ScrapeRunEvent>("ScrapeRunEvent", ScrapeRunEvent::TYPES),
    family::<TrackEvent>("TrackEvent", TrackEvent::TYPES),
    family::<DiaryEvent>("DiaryEvent", DiaryEvent::TYPES),
    family::<InboxEvent>("InboxEvent", InboxEvent::TYPES),
    family::<SlotEvent>("SlotEvent", SlotEvent::TYPES),
    family::<CalendarEvent>("CalendarEvent", CalendarEvent::TYPES),
    family::<LedgerEvent>("LedgerEvent", LedgerEvent::TYPES),
];

const fn family<E: DomainEvent + PartialEq + Debug>(
    name: &'static str,
    types: &'static [&'static str],
) -> Family {
    Family {
        name,
        types,
        decode: decode_and_round_trip::<E>,
    }
}

/// Decodes stored data, then checks that the event, stored again as the log would store it today, decodes to
/// the same event.
fn decode_and_round_trip<E: DomainEvent + PartialEq + Debug>(
    event_type: &str,
    schema_version: i32,
    data: Value,
) -> Result<Decoded, String> {
    let event = E::decode(event_type, schema_version, data).map_err(|e| e.to_string())?;
    let stored = NewEvent::from_domain(&event);
    if stored.event_type != event_type {
        return Err(format!(
            "decodes to an event whose type is {:?}",
            stored.event_type
        ));
    }
    let again = E::decode(
        &stored.event_type,
        stored.schema_version,
        stored.data.clone(),
    )
    .map_err(|e| {
        format!(
            "re-encoded at version {} it no longer decodes: {e}\n{:#}",
            stored.schema_version, stored.data
        )
    })?;
    if again != event {
        return Err(format!(
            "re-encoded at version {} it decodes to another event:\n{again:?}\ninstead of\n{event:?}",
            stored.schema_version
        ));
    }
    Ok(Decoded {
        event: format!("{event:?}"),
        current_version: stored.schema_version,
        written: stored.data,
    })
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// One golden file as today's code reads it.
struct Golden {
    file: String,
    event_type: String,
    version: i32,
    /// The stored data, as in the file.
    data: Value,
    /// The decoded event, or why the file cannot be read.
    decoded: Result<Decoded, String>,
}

/// Every golden file.
fn decode_all() -> Vec<Golden> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("eventlog/tests/golden exists")
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            match read_golden(path, &file) {
                Ok((event_type, version, data, decoded)) => Golden {
                    file,
                    event_type,
                    version,
                    data,
                    decoded,
                },
                Err(error) => Golden {
                    file,
                    event_type: String::new(),
                    version: 0,
                    data: Value::Null,
                    decoded: Err(error),
                },
            }
        })
        .collect()
}

/// Reads one file: its type, its version, its data, and what the data decodes to.
fn read_golden(
    path: &Path,
    name: &str,
) -> Result<(String, i32, Value, Result<Decoded, String>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let file: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let keys: BTreeSet<&str> = file
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let expected = BTreeSet::from(["type", "schema_version", "data", "metadata"]);
    if keys != expected {
        return Err(format!("has the keys {keys:?}, not {expected:?}"));
    }
    let event_type = file["type"].as_str().ok_or("type is not a string")?;
    let version = file["schema_version"]
        .as_i64()
        .and_then(|v| i32::try_from(v).ok())
        .ok_or("schema_version is not an i32")?;
    if name != format!("{event_type}.v{version}.json") {
        return Err(format!(
            "should be named {event_type}.v{version}.json after its content"
        ));
    }

    let metadata: Metadata = serde_json::from_value(file["metadata"].clone())
        .map_err(|e| format!("metadata does not decode: {e}"))?;
    // a field renamed in Metadata would otherwise decode silently as None
    let written = serde_json::to_value(&metadata).unwrap();
    if written != file["metadata"] {
        return Err(format!(
            "metadata is written differently today:\n{written:#}"
        ));
    }

    let family = FAMILIES
        .iter()
        .find(|f| f.types.contains(&event_type))
        .ok_or_else(|| format!("no event enum has the type {event_type:?}"))?;
    let decoded = (family.decode)(event_type, version, file["data"].clone())
        .map_err(|e| format!("{} does not read it: {e}", family.name));
    Ok((
        event_type.to_owned(),
        version,
        file["data"].clone(),
        decoded,
    ))
}

#[test]
fn every_golden_file_decodes_and_survives_a_round_trip() {
    let mut failures = Vec::new();
    // type → version → decoded event
    let mut by_type: BTreeMap<String, BTreeMap<i32, String>> = BTreeMap::new();
    for golden in decode_all() {
        match golden.decoded {
            Ok(decoded) if decoded.current_version < golden.version => failures.push(format!(
                "{}: today's code writes this type at version {}",
                golden.file, decoded.current_version
            )),
            Ok(decoded) => {
                by_type
                    .entry(golden.event_type)
                    .or_default()
                    .insert(golden.version, decoded.event);
            }
            Err(error) => failures.push(format!("{}: {error}", golden.file)),
        }
    }
    // the files of one type hold one event at each version, so upcasting an old one must give the new one
    for (event_type, versions) in &by_type {
        let mut events = versions.iter();
        let (first_version, first) = events.next().unwrap();
        for (version, event) in events {
            if event != first {
                failures.push(format!(
                    "{event_type}.v{version}.json decodes to\n{event}\nbut {event_type}.v{first_version}.json \
                     to\n{first}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden files that today's code cannot read:\n\n{}",
        failures.join("\n\n")
    );
}

/// A file at its type's current version holds the data today's code writes for the event it decodes to, so a
/// change of how fields are written (a time's unit, a field's name) cannot slip through as long as decoding
/// still accepts the old form.
#[test]
fn golden_files_at_the_current_version_are_written_the_same_today() {
    let mut failures = Vec::new();
    for golden in decode_all() {
        if let Ok(decoded) = &golden.decoded
            && decoded.current_version == golden.version
            && decoded.written != golden.data
        {
            failures.push(format!(
                "{}: today's code writes\n{:#}",
                golden.file, decoded.written
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "golden files whose event today's code writes differently:\n\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn every_event_type_has_a_golden_file_at_each_version() {
    let mut versions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let mut current: BTreeMap<String, i32> = BTreeMap::new();
    for golden in decode_all() {
        versions
            .entry(golden.event_type.clone())
            .or_default()
            .insert(golden.version);
        if let Ok(decoded) = golden.decoded {
            current.insert(golden.event_type, decoded.current_version);
        }
    }
    let mut missing = Vec::new();
    for family in FAMILIES {
        for &event_type in family.types {
            let have = versions.get(event_type).cloned().unwrap_or_default();
            // a type without any file: at least version 1 is missing
            let current = current.get(event_type).copied().unwrap_or(1);
            for version in 1..=current {
                if !have.contains(&version) {
                    missing.push(format!(
                        "eventlog/tests/golden/{event_type}.v{version}.json ({})",
                        family.name
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "event types without a stored example (write one with today's DomainEvent::encode and \
         eventlog::Metadata, then never change it; see domain::event):\n{}",
        missing.join("\n")
    );
}

/// Finds the event enums declared in `domain` by reading its sources, so a new enum cannot be left out of
/// [`FAMILIES`] (and so out of the golden files) unnoticed.
#[test]
fn every_event_enum_is_listed() {
    let domain_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/src");
    let mut declared = BTreeSet::new();
    let mut dirs = vec![domain_src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            // the testing helper's own tests declare throwaway events
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("testing.rs") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                let name = ["tagged_events!(", "impl DomainEvent for "]
                    .iter()
                    .find_map(|marker| Some(line.split_once(marker)?.1));
                if let Some(rest) = name {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    // the macro's own definition (`impl $crate::DomainEvent for $event`) has no name here
                    if !name.is_empty() {
                        declared.insert(name);
                    }
                }
            }
        }
    }
    let listed: BTreeSet<String> = FAMILIES.iter().map(|f| f.name.to_owned()).collect();
    assert!(
        declared.len() >= 12,
        "found only {declared:?} in {}",
        domain_src.display()
    );
    assert_eq!(
        declared, listed,
        "the event enums of domain (left) and those in FAMILIES (right) differ"
    );
}
