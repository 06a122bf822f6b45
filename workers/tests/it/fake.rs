//! A fake carsensor.net: an axum app on a free local port serving the real fixture pages and variations of
//! them, with behaviours per path (fail first, rate-limit, hang, redirect, garbage) and a count of requests per
//! path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use reqwest::Url;

use crate::fixture;

pub const ROBOTS: &str = "User-agent: *\nDisallow: /usedcar/search.php\nDisallow: /usedcar/inquiry_mm.php\n\nUser-agent: BadBot\nDisallow: /\n";

/// What a path answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Page(String),
    /// `status` (with `Retry-After` when given) for the first `times` requests, then the page.
    FailFirst {
        status: u16,
        retry_after: Option<String>,
        times: u32,
        then: String,
    },
    /// Never answers within any sane timeout.
    Hang,
    /// `status` (a 3xx) with `Location: location`.
    Redirect {
        status: u16,
        location: String,
    },
}

#[derive(Default)]
struct Site {
    paths: HashMap<String, Behaviour>,
    hits: HashMap<String, u32>,
    user_agents: Vec<String>,
}

#[derive(Clone)]
pub struct FakeCarsensor {
    pub url: Url,
    site: Arc<Mutex<Site>>,
}

impl FakeCarsensor {
    pub async fn start() -> Self {
        let site = Arc::new(Mutex::new(Site::default()));
        let app = Router::new().fallback(serve).with_state(site.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let fake = Self {
            url: Url::parse(&format!("http://{address}")).unwrap(),
            site,
        };
        fake.set("/robots.txt", Behaviour::Page(ROBOTS.to_owned()));
        fake
    }

    pub fn set(&self, path: &str, behaviour: Behaviour) {
        self.site
            .lock()
            .unwrap()
            .paths
            .insert(path.to_owned(), behaviour);
    }

    pub fn page(&self, path: &str, html: String) {
        self.set(path, Behaviour::Page(html));
    }

    /// `path` answers with a 302 to `location`.
    pub fn redirect(&self, path: &str, location: &str) {
        self.set(
            path,
            Behaviour::Redirect {
                status: 302,
                location: location.to_owned(),
            },
        );
    }

    /// This server under another host name (`localhost` instead of `127.0.0.1`): another origin, another
    /// site as far as robots.txt is concerned.
    pub fn elsewhere(&self) -> Url {
        let mut url = self.url.clone();
        url.set_host(Some("localhost")).unwrap();
        url
    }

    /// Requests made for `path` so far.
    pub fn hits(&self, path: &str) -> u32 {
        self.site
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests made in all.
    pub fn total_hits(&self) -> u32 {
        self.site.lock().unwrap().hits.values().sum()
    }

    pub fn user_agents(&self) -> Vec<String> {
        self.site.lock().unwrap().user_agents.clone()
    }

    /// The three-page listing (6 cars) with a detail page for the listing whose list entry lacks its year and
    /// mileage.
    pub fn three_pages(&self) {
        self.page(
            "/usedcar/index.html",
            listing_page(&[], Some("/usedcar/index2.html")),
        );
        self.page(
            "/usedcar/index2.html",
            listing_page(
                &[
                    ("AU6877255381", "AU1000000201"),
                    ("AU6869806001", "AU1000000202"),
                ],
                Some("/usedcar/index3.html"),
            ),
        );
        self.page("/usedcar/index3.html", page_three());
        self.page(
            "/usedcar/detail/AU1000000302/index.html",
            fixture("detail_AU6877255381_truncated.html").replace("AU6877255381", "AU1000000302"),
        );
    }
}

/// The real listing fixture with its listing ids replaced and a `link[rel=next]` added.
pub fn listing_page(ids: &[(&str, &str)], next: Option<&str>) -> String {
    let mut html = fixture("listing_prius_truncated.html");
    for (from, to) in ids {
        html = html.replace(from, to);
    }
    if let Some(next) = next {
        html = html.replacen(
            "<html><body>",
            &format!("<html><head><link rel=\"next\" href=\"{next}\"></head><body>"),
            1,
        );
    }
    html
}

/// Page three: two more cars, the second without year and mileage in its list entry.
pub fn page_three() -> String {
    let html = listing_page(
        &[
            ("AU6877255381", "AU1000000301"),
            ("AU6869806001", "AU1000000302"),
        ],
        None,
    );
    let html = replace_nth(&html, ">年式</dt>", ">-</dt>", 2);
    replace_nth(&html, ">走行距離</dt>", ">-</dt>", 2)
}

/// `text` with the `n`th (1-based) occurrence of `from` replaced.
pub fn replace_nth(text: &str, from: &str, to: &str, n: usize) -> String {
    let at = text
        .match_indices(from)
        .nth(n - 1)
        .unwrap_or_else(|| panic!("{from:?} occurs fewer than {n} times"))
        .0;
    format!("{}{}{}", &text[..at], to, &text[at + from.len()..])
}

async fn serve(State(site): State<Arc<Mutex<Site>>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    let behaviour = {
        let mut site = site.lock().unwrap();
        *site.hits.entry(path.clone()).or_default() += 1;
        if let Some(agent) = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            site.user_agents.push(agent.to_owned());
        }
        match site.paths.get_mut(&path) {
            Some(Behaviour::FailFirst { times, .. }) if *times > 0 => {
                *times -= 1;
                site.paths.get(&path).cloned()
            }
            Some(Behaviour::FailFirst { then, .. }) => Some(Behaviour::Page(then.clone())),
            other => other.cloned(),
        }
    };
    match behaviour {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Behaviour::Page(body)) => {
            let kind = if path.ends_with(".txt") {
                "text/plain; charset=utf-8"
            } else {
                "text/html; charset=utf-8"
            };
            ([(header::CONTENT_TYPE, kind)], body).into_response()
        }
        Some(Behaviour::FailFirst {
            status,
            retry_after,
            ..
        }) => {
            let status = StatusCode::from_u16(status).unwrap();
            match retry_after {
                Some(wait) => (status, [(header::RETRY_AFTER, wait)], "slow down").into_response(),
                None => (status, "unavailable").into_response(),
            }
        }
        Some(Behaviour::Redirect { status, location }) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::LOCATION, location)],
        )
            .into_response(),
        Some(Behaviour::Hang) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "too late".into_response()
        }
    }
}
