//! A solution's repository link: an http(s) URL on a known git host, normalised so one repository has one
//! spelling.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Hosts whose repository pages are accepted, with how many path segments name a repository on them.
const GIT_HOSTS: &[&str] = &[
    "github.com",
    "gitlab.com",
    "bitbucket.org",
    "codeberg.org",
    "git.sr.ht",
    "gitea.com",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepoUrl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoUrlError {
    #[error("a repository link is an http(s) URL such as https://github.com/owner/repo; got {0:?}")]
    NotAUrl(String),
    #[error("a repository link must use https or http, not {0}")]
    Scheme(String),
    #[error("{0} is not a git host we accept (accepted: {hosts})", hosts = GIT_HOSTS.join(", "))]
    Host(String),
    #[error("a repository link cannot carry a user name, password or port")]
    Credentials,
    #[error(
        "a repository link names an owner and a repository, e.g. https://github.com/owner/repo"
    )]
    NoRepository,
}

impl RepoUrl {
    /// Accepts `http(s)://<git host>/<owner>/<repo>[/...]` and returns it as
    /// `https://<host>/<owner>/<repo>[/...]`: lowercase host without `www.`, no `.git` suffix, no trailing
    /// slash, no query or fragment (they never identify a repository and often carry tracking).
    pub fn parse(raw: &str) -> Result<Self, RepoUrlError> {
        let trimmed = raw.trim();
        if trimmed.len() > 2000 {
            return Err(RepoUrlError::NotAUrl(trimmed.chars().take(64).collect()));
        }
        let url =
            url::Url::parse(trimmed).map_err(|_| RepoUrlError::NotAUrl(trimmed.to_owned()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(RepoUrlError::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() || url.port().is_some() {
            return Err(RepoUrlError::Credentials);
        }
        let host = match url.host() {
            Some(url::Host::Domain(domain)) => domain.to_ascii_lowercase(),
            Some(other) => return Err(RepoUrlError::Host(other.to_string())),
            None => return Err(RepoUrlError::NotAUrl(trimmed.to_owned())),
        };
        let host = host.trim_end_matches('.');
        let host = host.strip_prefix("www.").unwrap_or(host);
        if !GIT_HOSTS.contains(&host) {
            return Err(RepoUrlError::Host(host.to_owned()));
        }
        let mut segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if segments.len() < 2 {
            return Err(RepoUrlError::NoRepository);
        }
        if let Some(repository) = segments[1].strip_suffix(".git") {
            if repository.is_empty() {
                return Err(RepoUrlError::NoRepository);
            }
            segments[1] = repository;
        }
        Ok(Self(format!("https://{host}/{}", segments.join("/"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_links_are_normalised() {
        for (raw, expected) in [
            (
                "https://github.com/rust-lang/rust",
                "https://github.com/rust-lang/rust",
            ),
            (
                " http://WWW.GitHub.com/rust-lang/rust.git/ ",
                "https://github.com/rust-lang/rust",
            ),
            (
                "https://github.com/a/b?tab=readme#top",
                "https://github.com/a/b",
            ),
            (
                "https://gitlab.com/group/sub/project",
                "https://gitlab.com/group/sub/project",
            ),
            (
                "https://github.com/a/b/tree/main/src",
                "https://github.com/a/b/tree/main/src",
            ),
            ("https://codeberg.org/a/b", "https://codeberg.org/a/b"),
        ] {
            assert_eq!(RepoUrl::parse(raw).unwrap().as_str(), expected, "{raw}");
        }
    }

    #[test]
    fn anything_but_a_repository_on_a_git_host_is_refused() {
        for (raw, expected) in [
            (
                "github.com/a/b",
                RepoUrlError::NotAUrl("github.com/a/b".into()),
            ),
            ("ftp://github.com/a/b", RepoUrlError::Scheme("ftp".into())),
            (
                "javascript:alert(1)",
                RepoUrlError::Scheme("javascript".into()),
            ),
            (
                "https://example.com/a/b",
                RepoUrlError::Host("example.com".into()),
            ),
            (
                "https://github.com.evil.io/a/b",
                RepoUrlError::Host("github.com.evil.io".into()),
            ),
            (
                "https://127.0.0.1/a/b",
                RepoUrlError::Host("127.0.0.1".into()),
            ),
            ("https://user:pw@github.com/a/b", RepoUrlError::Credentials),
            ("https://github.com:8443/a/b", RepoUrlError::Credentials),
            ("https://github.com/a", RepoUrlError::NoRepository),
            ("https://github.com/", RepoUrlError::NoRepository),
            ("https://github.com/a/.git", RepoUrlError::NoRepository),
        ] {
            assert_eq!(RepoUrl::parse(raw), Err(expected), "{raw}");
        }
    }
}
