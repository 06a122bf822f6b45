//! Polite, robust HTTP for the scraper: a clear User-Agent, `robots.txt` honoured (never a request to a
//! disallowed path), a minimum pause between requests (or the site's `Crawl-delay` when longer), timeouts, and
//! retries of network errors, 5xx and 429 with exponential backoff and jitter (`backon`), waiting at least as
//! long as `Retry-After` says, giving up after a bounded number of attempts.
//!
//! Only the scraped site is fetched from: its robots.txt speaks for its own origin alone, so a URL on another
//! origin (a start page, a `rel=next` link or a detail link pointing elsewhere) is refused. Redirects are
//! followed here, not by the HTTP client, so that every hop is checked the same way before it is requested:
//! on the site, allowed by robots.txt, at most [`MAX_REDIRECTS`] of them.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use reqwest::{StatusCode, Url};
use texting_robots::Robot;
use tokio::sync::Mutex;

use crate::clock::{Clock, Sleeper};

/// How the fetcher behaves. The defaults are for the real site; tests shorten them.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub user_agent: String,
    /// Whole request, connect to last byte.
    pub timeout: Duration,
    /// Least pause between the end of one request and the start of the next.
    pub min_delay: Duration,
    /// Retries after the first attempt (network errors, 5xx, 429).
    pub retries: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this gives up on the page instead of waiting.
    pub max_retry_after: Duration,
    /// Largest body read (a bigger one fails the page).
    pub max_body_bytes: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            timeout: Duration::from_secs(20),
            min_delay: Duration::from_secs(1),
            retries: 4,
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

pub const DEFAULT_USER_AGENT: &str = "AcademyCarsBot/0.1 (used-car catalogue of the Academy learning platform; honours robots.txt; 1 request/s)";

/// Redirects followed for one page (as many as browsers' minimum and RFC 9309 ask for robots.txt).
pub const MAX_REDIRECTS: u32 = 5;

/// Why a page was not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("robots.txt disallows {0}")]
    Disallowed(String),
    /// The URL is on another origin than the scraped site, whose robots.txt does not speak for it.
    #[error("{url} is not on the scraped site {site}")]
    OffSite { url: String, site: String },
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("HTTP {status}; Retry-After of {seconds} s is longer than we wait")]
    RetryAfterTooLong { status: u16, seconds: u64 },
    #[error("network: {0}")]
    Network(String),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status(status) => *status == 429 || *status >= 500,
            FetchError::Network(_) => true,
            FetchError::Disallowed(_)
            | FetchError::OffSite { .. }
            | FetchError::TooManyRedirects(_)
            | FetchError::RetryAfterTooLong { .. }
            | FetchError::TooLarge(_) => false,
        }
    }
}

/// A page that could not be fetched, and how many requests were tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: FetchError,
    pub attempts: u32,
}

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the page ended up after redirects.
    pub url: Url,
    pub body: String,
    /// Requests made, retries and redirect hops included.
    pub attempts: u32,
}

/// What the server answered one request with.
#[derive(Debug)]
enum Answer {
    Page(String),
    /// A 301, 302, 303, 307 or 308 to this URL (resolved against the request's).
    Redirect(Url),
}

/// One attempt's failure, with the server's `Retry-After` if it sent one.
#[derive(Debug)]
struct AttemptError {
    error: FetchError,
    retry_after: Option<Duration>,
}

/// The site's rules for us, from its robots.txt.
enum Rules {
    /// robots.txt was read (or is absent: everything is allowed).
    Robots(Box<Robot>),
    AllowAll,
}

pub struct Fetcher {
    client: reqwest::Client,
    /// The scraped site: only its origin is fetched from.
    site: Url,
    config: FetchConfig,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    rules: Rules,
    /// When the last request ended; the next waits `min_delay` (or `Crawl-delay`) after it. Held across each
    /// request, so requests never overlap.
    last: Mutex<Option<DateTime<Utc>>>,
}

impl Fetcher {
    /// A fetcher for `site` (its origin: scheme, host and port).
    pub fn new(
        site: Url,
        config: FetchConfig,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // redirects are followed by `follow`, which checks each hop before requesting it
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError::Network(e.to_string()))?;
        Ok(Self {
            client,
            site,
            config,
            clock,
            sleeper,
            rules: Rules::AllowAll,
            last: Mutex::new(None),
        })
    }

    /// Reads the site's robots.txt (RFC 9309): a 2xx body is parsed for our User-Agent; a 4xx means no rules;
    /// an unreachable robots.txt (5xx, network, after retries) means nothing may be fetched, so the error is
    /// returned and the caller fetches nothing. Its redirects are followed up to [`MAX_REDIRECTS`] hops, even
    /// to another host, as RFC 9309 (2.3.1.2) asks.
    pub async fn load_robots(&mut self) -> Result<(), Failure> {
        let robots_url = self
            .robots_url()
            .map_err(|error| Failure { error, attempts: 0 })?;
        match self.follow(&robots_url, false).await {
            Ok(fetched) => {
                let agent = robots_agent(&self.config.user_agent);
                self.rules = match Robot::new(&agent, fetched.body.as_bytes()) {
                    Ok(robot) => Rules::Robots(Box::new(robot)),
                    // the parser is forgiving; a file it still cannot read gives no rules to follow
                    Err(error) => {
                        tracing::warn!(%error, "robots.txt does not parse; treating it as empty");
                        Rules::AllowAll
                    }
                };
                Ok(())
            }
            Err(Failure {
                error: FetchError::Status(status),
                ..
            }) if (400..500).contains(&status) && status != 429 => {
                self.rules = Rules::AllowAll;
                Ok(())
            }
            Err(failure) => Err(failure),
        }
    }

    /// The site's robots.txt.
    pub fn robots_url(&self) -> Result<Url, FetchError> {
        self.site
            .join("/robots.txt")
            .map_err(|e| FetchError::Network(e.to_string()))
    }

    /// Whether robots.txt lets us fetch `url`.
    pub fn allowed(&self, url: &Url) -> bool {
        match &self.rules {
            Rules::AllowAll => true,
            Rules::Robots(robot) => robot.allowed(url.as_str()),
        }
    }

    /// Whether `url` may be requested: on the site's origin, and allowed by its robots.txt.
    pub fn check(&self, url: &Url) -> Result<(), FetchError> {
        if url.origin() != self.site.origin() {
            metrics::counter!(REQUESTS_TOTAL, "outcome" => "off_site").increment(1);
            return Err(FetchError::OffSite {
                url: url.to_string(),
                site: self.site.origin().ascii_serialization(),
            });
        }
        if !self.allowed(url) {
            metrics::counter!(REQUESTS_TOTAL, "outcome" => "disallowed").increment(1);
            return Err(FetchError::Disallowed(url.path().to_owned()));
        }
        Ok(())
    }

    /// Fetches `url`, and each redirect it leads to, if it is on the site and robots.txt allows it, retrying
    /// what is worth retrying.
    pub async fn get(&self, url: &Url) -> Result<Fetched, Failure> {
        self.follow(url, true).await
    }

    /// Fetches `url` and follows its redirects, at most [`MAX_REDIRECTS`] hops. With `checked`, `url` and every
    /// hop pass [`Fetcher::check`] before they are requested; the first that does not ends the fetch.
    async fn follow(&self, url: &Url, checked: bool) -> Result<Fetched, Failure> {
        let mut current = url.clone();
        let mut attempts = 0;
        let mut hops = 0;
        loop {
            if checked && let Err(error) = self.check(&current) {
                return Err(Failure { error, attempts });
            }
            match self.fetch(&current).await {
                Ok((Answer::Page(body), tried)) => {
                    return Ok(Fetched {
                        url: current,
                        body,
                        attempts: attempts + tried,
                    });
                }
                Ok((Answer::Redirect(to), tried)) => {
                    attempts += tried;
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(Failure {
                            error: FetchError::TooManyRedirects(MAX_REDIRECTS),
                            attempts,
                        });
                    }
                    tracing::debug!(from = %current, to = %to, "following a redirect");
                    current = to;
                }
                Err(failure) => {
                    return Err(Failure {
                        error: failure.error,
                        attempts: attempts + failure.attempts,
                    });
                }
            }
        }
    }

    /// Attempts `url` until it answers, fails for good, or the backoff (exponential with jitter, from `backon`)
    /// is spent. A `Retry-After` lengthens the wait to what the server asked for. The answer comes with the
    /// number of requests made.
    async fn fetch(&self, url: &Url) -> Result<(Answer, u32), Failure> {
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.retries)
            .build();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.attempt(url).await {
                Ok(answer) => return Ok((answer, attempts)),
                Err(error) => error,
            };
            let give_up = |error| Err(Failure { error, attempts });
            if !error.error.retryable() {
                return give_up(error.error);
            }
            let Some(delay) = delays.next() else {
                return give_up(error.error);
            };
            let delay = match (error.retry_after, &error.error) {
                (Some(wait), FetchError::Status(status)) if wait > self.config.max_retry_after => {
                    return give_up(FetchError::RetryAfterTooLong {
                        status: *status,
                        seconds: wait.as_secs(),
                    });
                }
                (Some(wait), _) => wait.max(delay),
                (None, _) => delay,
            };
            tracing::info!(%url, error = %error.error, ?delay, attempts, "retrying");
            self.sleeper.sleep(delay).await;
        }
    }

    /// One request, after the polite pause.
    async fn attempt(&self, url: &Url) -> Result<Answer, AttemptError> {
        let mut last = self.last.lock().await;
        if let Some(previous) = *last {
            let gap = self.gap();
            let since = (self.clock.now() - previous).to_std().unwrap_or_default();
            if since < gap {
                self.sleeper.sleep(gap - since).await;
            }
        }
        let result = self.request(url).await;
        *last = Some(self.clock.now());
        let outcome = match &result {
            Ok(Answer::Page(_)) => "ok",
            Ok(Answer::Redirect(_)) => "redirect",
            Err(AttemptError {
                error: FetchError::Network(_),
                ..
            }) => "network_error",
            Err(_) => "http_error",
        };
        metrics::counter!(REQUESTS_TOTAL, "outcome" => outcome).increment(1);
        result
    }

    /// `min_delay`, or robots.txt's `Crawl-delay` when that is longer.
    fn gap(&self) -> Duration {
        let crawl_delay = match &self.rules {
            Rules::Robots(robot) => robot
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f32(d.min(60.0))),
            Rules::AllowAll => None,
        };
        crawl_delay.map_or(self.config.min_delay, |d| d.max(self.config.min_delay))
    }

    async fn request(&self, url: &Url) -> Result<Answer, AttemptError> {
        let network = |e: reqwest::Error| AttemptError {
            error: FetchError::Network(describe(&e)),
            retry_after: None,
        };
        let response = self
            .client
            .get(url.clone())
            .header(
                reqwest::header::ACCEPT,
                "text/html,text/plain;q=0.9,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            // a redirect without a usable Location is an answer we cannot use, like any other status
            let target = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| url.join(location.trim()).ok())
                .filter(|target| matches!(target.scheme(), "http" | "https"));
            return match target {
                Some(mut target) => {
                    target.set_fragment(None);
                    Ok(Answer::Redirect(target))
                }
                None => Err(AttemptError {
                    error: FetchError::Status(status.as_u16()),
                    retry_after: None,
                }),
            };
        }
        if !status.is_success() {
            let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
            {
                response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, self.clock.now()))
            } else {
                None
            };
            return Err(AttemptError {
                error: FetchError::Status(status.as_u16()),
                retry_after,
            });
        }
        if response
            .content_length()
            .is_some_and(|length| length as usize > self.config.max_body_bytes)
        {
            return Err(AttemptError {
                error: FetchError::TooLarge(self.config.max_body_bytes),
                retry_after: None,
            });
        }
        let bytes = response.bytes().await.map_err(network)?;
        if bytes.len() > self.config.max_body_bytes {
            return Err(AttemptError {
                error: FetchError::TooLarge(self.config.max_body_bytes),
                retry_after: None,
            });
        }
        Ok(Answer::Page(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// The error with its causes (reqwest's own message hides whether it was a timeout).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The product token robots.txt groups are matched against: the User-Agent's first word, without version.
fn robots_agent(user_agent: &str) -> String {
    user_agent
        .split_whitespace()
        .next()
        .unwrap_or(user_agent)
        .split('/')
        .next()
        .unwrap_or(user_agent)
        .to_owned()
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110), as a wait from `now`.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

/// `academy_scraper_requests_total{outcome}`.
pub const REQUESTS_TOTAL: &str = "academy_scraper_requests_total";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 22 Nov 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun, 22 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn robots_groups_match_the_product_token() {
        assert_eq!(robots_agent(DEFAULT_USER_AGENT), "AcademyCarsBot");
        assert_eq!(robots_agent("plain"), "plain");
    }

    #[test]
    fn what_is_retried() {
        assert!(FetchError::Status(503).retryable());
        assert!(FetchError::Status(429).retryable());
        assert!(FetchError::Network("reset".into()).retryable());
        assert!(!FetchError::Status(404).retryable());
        assert!(!FetchError::Disallowed("/usedcar/search.php".into()).retryable());
        assert!(!FetchError::TooManyRedirects(MAX_REDIRECTS).retryable());
    }
}
