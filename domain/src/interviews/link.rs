//! A meeting link: an https link to a room of a known video provider.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MeetingLink(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a meeting link is an https link to a Google Meet (https://meet.google.com/abc-defg-hij), Zoom \
     (https://zoom.us/j/123456789) or Jitsi (https://meet.jit.si/room) meeting; got {0:?}"
)]
pub struct MeetingLinkError(pub String);

impl MeetingLink {
    /// Accepts Google Meet codes (`xxx-yyyy-zzz`), Zoom meetings (`/j/<digits>` on zoom.us or a company's
    /// `*.zoom.us`, with its `pwd` query kept) and Jitsi rooms on meet.jit.si; returns it without tracking
    /// queries or fragments, the host lowercased.
    pub fn parse(raw: &str) -> Result<Self, MeetingLinkError> {
        let refuse = || MeetingLinkError(raw.trim().chars().take(200).collect());
        let url = url::Url::parse(raw.trim()).map_err(|_| refuse())?;
        if url.scheme() != "https"
            || !url.username().is_empty()
            || url.password().is_some()
            || url.port().is_some()
        {
            return Err(refuse());
        }
        let Some(url::Host::Domain(host)) = url.host() else {
            return Err(refuse());
        };
        let host = host.to_ascii_lowercase();
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let link = match (host.as_str(), segments.as_slice()) {
            ("meet.google.com", [code]) if google_meet_code(code) => {
                format!("https://meet.google.com/{}", code.to_ascii_lowercase())
            }
            (zoom, ["j", meeting])
                if (zoom == "zoom.us" || zoom.ends_with(".zoom.us"))
                    && (9..=11).contains(&meeting.len())
                    && meeting.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let password = url
                    .query_pairs()
                    .find(|(key, _)| key == "pwd")
                    .map(|(_, value)| value.into_owned())
                    .filter(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
                match password {
                    Some(password) => format!("https://{zoom}/j/{meeting}?pwd={password}"),
                    None => format!("https://{zoom}/j/{meeting}"),
                }
            }
            ("meet.jit.si", [room])
                if (3..=100).contains(&room.len())
                    && room
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                format!("https://meet.jit.si/{room}")
            }
            _ => return Err(refuse()),
        };
        Ok(Self(link))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeetingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `abc-defg-hij`: letters in groups of 3, 4 and 3.
fn google_meet_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 3
        && groups.iter().map(|g| g.len()).eq([3, 4, 3])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_of_known_video_providers_are_accepted_and_cleaned() {
        for (raw, expected) in [
            (
                "https://meet.google.com/abc-defg-hij",
                "https://meet.google.com/abc-defg-hij",
            ),
            (
                " https://MEET.google.com/ABC-defg-hij?authuser=0 ",
                "https://meet.google.com/abc-defg-hij",
            ),
            (
                "https://zoom.us/j/1234567890?pwd=abc.DEF&utm=x",
                "https://zoom.us/j/1234567890?pwd=abc.DEF",
            ),
            (
                "https://acme.zoom.us/j/123456789",
                "https://acme.zoom.us/j/123456789",
            ),
            (
                "https://meet.jit.si/rust-mock_42#config",
                "https://meet.jit.si/rust-mock_42",
            ),
        ] {
            assert_eq!(MeetingLink::parse(raw).unwrap().as_str(), expected, "{raw}");
        }
    }

    #[test]
    fn anything_else_is_a_clear_validation_error() {
        for raw in [
            "http://meet.google.com/abc-defg-hij",
            "https://meet.google.com/abc-defg",
            "https://meet.google.com.evil.io/abc-defg-hij",
            "https://zoom.us/j/12ab",
            "https://evilzoom.us/j/123456789",
            "https://example.com/room",
            "https://meet.jit.si/",
            "meet.google.com/abc-defg-hij",
            "https://user@meet.jit.si/room",
        ] {
            let error = MeetingLink::parse(raw).unwrap_err();
            assert!(error.to_string().contains("Google Meet"), "{raw}");
        }
    }
}
