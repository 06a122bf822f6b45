//! Stream ids: `<category>-<uuid>`, e.g. `track-0190c3a4-...`. The category groups streams of one aggregate
//! type and is stored beside the id so readers can filter on it.

use std::fmt;

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamIdError {
    #[error(
        "a stream id is <category>-<id> with a lowercase category of letters, digits and '_'; got {0:?}"
    )]
    Malformed(String),
}

impl StreamId {
    /// The stream of aggregate `id` in `category` (a lowercase word such as `track`).
    pub fn new(category: &str, id: Uuid) -> Result<Self, StreamIdError> {
        Self::parse(&format!("{category}-{id}"))
    }

    pub fn parse(raw: &str) -> Result<Self, StreamIdError> {
        let malformed = || StreamIdError::Malformed(raw.to_owned());
        let (category, rest) = raw.split_once('-').ok_or_else(malformed)?;
        let category_ok = !category.is_empty()
            && category
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !category_ok || rest.is_empty() || raw.len() > 512 || raw.chars().any(char::is_control) {
            return Err(malformed());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(&self.0, |(c, _)| c)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_id_is_a_category_and_an_id() {
        let id = Uuid::nil();
        let stream = StreamId::new("track", id).unwrap();
        assert_eq!(
            stream.as_str(),
            "track-00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(stream.category(), "track");
    }

    #[test]
    fn malformed_stream_ids_are_rejected() {
        for raw in ["", "track", "-x", "Track-1", "tr ack-1", "track-", "a-b\nc"] {
            assert!(StreamId::parse(raw).is_err(), "{raw:?} should be rejected");
        }
        assert_eq!(StreamId::parse("email-a@b.c").unwrap().category(), "email");
    }
}
