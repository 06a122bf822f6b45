//! `academy bench --read`: the signed-in `cars` query (the 20 cheapest Toyotas under 1,000,000 yen) over
//! 100,000 cars, through the real server at 32 concurrent HTTP connections, beside the database's own ceiling
//! for the same SQL statement at the same concurrency.
//!
//! - The cars are `CarListed` events appended to the log (1,000 streams per append); the server's own
//!   projection builds the read model from them, so the table, its stored keys and its indexes are the real
//!   ones. Then `vacuum analyze`, as autovacuum would leave a table that size.
//! - The server is `academy serve` (this binary) in a child process, with a pool of 10 connections (the peers'
//!   setting), so its resident memory is its own: a first one builds the read model, a fresh one is measured
//!   (as after a deployment). The token comes from `register` and `login` over HTTP.
//! - The load: `connections` tasks, each with its own keep-alive HTTP/1.1 connection, POSTing the GraphQL query
//!   back to back; a warm-up, then `seconds` of measurement. Every answer is checked (status 200, no `errors`).
//! - The ceiling: the statement the server runs for that query ([`projections::cars::cars_statement`]),
//!   prepared, from `connections` sqlx connections for the same time: what `pgbench -M prepared` measures.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use domain::cars::{CarDetails, CarEvent, ListingId, Prices, car_stream};
use eventlog::{
    AppendRequest, EventLog, ExpectedVersion, Metadata, NewEvent, Source, StreamAppend,
};
use projections::cars::{CarFilter, CarOrder, CarRow};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use super::{BenchArgs, thousands};

/// The make and price bound of the benchmark query.
pub const MAKE: &str = "トヨタ";
pub const MAX_PRICE_YEN: i64 = 1_000_000;
/// Rows per page, as a client asks.
const FIRST: i64 = 20;
/// The GraphQL query: the fields PostGraphile's peer query reads.
pub const QUERY: &str = "query Cars($make: String!, $maxPrice: Int!) {
  cars(filter: { make: $make, maxPriceYen: $maxPrice }, orderBy: PRICE_ASC, first: 20) {
    edges { node { id make model year mileageKm totalPriceYen } }
  }
}";
const WARM_UP: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct ReadFigures {
    pub read_cars: usize,
    pub read_connections: usize,
    pub read_seconds: u64,
    /// The GraphQL server over HTTP.
    pub read_server: Load,
    /// The same SQL straight from sqlx.
    pub read_ceiling: Load,
    /// The server's resident memory after the load, and its peak.
    pub read_server_rss_mib: f64,
    pub read_server_peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Load {
    pub requests: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failures: usize,
}

impl ReadFigures {
    pub(super) fn print(&self) {
        println!(
            "read: signed-in `cars` ({FIRST} cheapest {MAKE} ≤ {} yen) over {} cars, {} connections, {} s",
            thousands(MAX_PRICE_YEN as f64),
            thousands(self.read_cars as f64),
            self.read_connections,
            self.read_seconds
        );
        for (name, load) in [
            ("  server (HTTP + GraphQL)", &self.read_server),
            ("  database ceiling (same SQL)", &self.read_ceiling),
        ] {
            println!(
                "{name:<30} {:>9} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   failures {}",
                thousands(load.per_second),
                load.p50_ms,
                load.p99_ms,
                load.failures
            );
        }
        println!(
            "  server RSS {:.1} MiB after the load (peak {:.1} MiB); server at {:.0} % of the ceiling",
            self.read_server_rss_mib,
            self.read_server_peak_rss_mib,
            100.0 * self.read_server.per_second / self.read_ceiling.per_second.max(1.0)
        );
    }
}

pub(super) async fn measure(
    pool: &PgPool,
    options: &PgConnectOptions,
    args: &BenchArgs,
) -> anyhow::Result<ReadFigures> {
    let cars = args.read_cars as usize;
    let connections = usize::from(args.read_connections);
    let seconds = u64::from(args.read_seconds);
    let started = Instant::now();
    append_cars(pool, cars).await?;
    eprintln!(
        "read: {cars} CarListed events appended in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let builder = Server::start(options).await?;
    let built = Instant::now();
    wait_for_cars(pool, cars).await?;
    let (_, build_peak) = builder.rss_mib()?;
    eprintln!(
        "read: the server's projection built the cars in {:.1} s (its peak RSS {build_peak:.0} MiB)",
        built.elapsed().as_secs_f64()
    );
    builder.stop().await;
    sqlx::raw_sql("vacuum analyze cars.cars")
        .execute(pool)
        .await?;
    // the server measured is a fresh process on the built read model, as after a deployment: what a build
    // of 100,000 rows leaves in the allocator is not what serving needs
    let server = Server::start(options).await?;

    let http = reqwest::Client::new();
    let token = sign_in(&http, &server.url).await?;
    let body = json!({ "query": QUERY, "variables": { "make": MAKE, "maxPrice": MAX_PRICE_YEN } });
    check_answer(&http, &server.url, &token, &body, pool).await?;
    let body = serde_json::to_vec(&body)?;
    let request = HttpRequest {
        url: server.url.clone(),
        authorization: format!("Bearer {token}"),
        body,
    };
    drive(connections, WARM_UP, |_| request.clone().send_fn()).await;
    let read_server = drive(connections, Duration::from_secs(seconds), |_| {
        request.clone().send_fn()
    })
    .await;
    let (rss, peak) = server.rss_mib()?;

    let database = PgPoolOptions::new()
        .max_connections(connections as u32)
        .min_connections(connections as u32)
        .connect_with(options.clone())
        .await?;
    let filter = CarFilter {
        make: Some(MAKE.to_owned()),
        max_price: Some(MAX_PRICE_YEN),
        ..CarFilter::default()
    };
    drive(connections, WARM_UP, |_| statement_fn(&database, &filter)).await;
    let read_ceiling = drive(connections, Duration::from_secs(seconds), |_| {
        statement_fn(&database, &filter)
    })
    .await;
    database.close().await;
    server.stop().await;
    Ok(ReadFigures {
        read_cars: cars,
        read_connections: connections,
        read_seconds: seconds,
        read_server,
        read_ceiling,
        read_server_rss_mib: rss,
        read_server_peak_rss_mib: peak,
    })
}

/// A deterministic listing: makes weighted as on carsensor.net (a fifth Toyotas), prices from the make's base
/// by age and mileage, one in fifty without a total price (price on request).
fn listing(n: usize) -> CarEvent {
    const MAKES: &[(&str, &str, i64, u64)] = &[
        ("トヨタ", "プリウス", 2_800_000, 20),
        ("ホンダ", "フィット", 2_400_000, 12),
        ("日産", "ノート", 2_300_000, 12),
        ("マツダ", "CX-5", 2_500_000, 8),
        ("スバル", "レヴォーグ", 2_700_000, 6),
        ("スズキ", "スイフト", 1_500_000, 10),
        ("ダイハツ", "タント", 1_400_000, 8),
        ("三菱", "デリカD:5", 2_200_000, 5),
        ("レクサス", "NX", 5_500_000, 5),
        ("BMW", "3シリーズ", 5_000_000, 5),
        ("メルセデス・ベンツ", "Cクラス", 5_800_000, 5),
        ("フォルクスワーゲン", "ゴルフ", 3_000_000, 4),
    ];
    let h = splitmix(n as u64);
    let mut pick = h % 100;
    let &(make, model, base, _) = MAKES
        .iter()
        .find(|(_, _, _, weight)| {
            let hit = pick < *weight;
            pick = pick.saturating_sub(*weight);
            hit
        })
        .unwrap_or(&MAKES[0]);
    let age = (h >> 8) % 20;
    let mileage = ((h >> 16) % 200_000) as i64;
    let factor =
        1.2 - age as f64 * 0.05 - mileage as f64 / 400_000.0 + ((h >> 40) % 30) as f64 / 100.0;
    let body = ((base as f64 * factor.max(0.05)) as i64 / 10_000) * 10_000;
    let total =
        (!(h >> 48).is_multiple_of(50)).then_some(body + 80_000 + ((h >> 32) % 10) as i64 * 10_000);
    let id = ListingId::parse(&format!("AU{:010}", 7_000_000_000 + n)).expect("a valid listing id");
    CarEvent::CarListed {
        listing_id: id,
        prices: Prices {
            body_yen: Some(body),
            total_yen: total,
        },
        details: CarDetails {
            make: Some(make.to_owned()),
            model: Some(model.to_owned()),
            grade: Some("ベースグレード".to_owned()),
            year: Some(2025 - age as i32),
            mileage_km: Some(mileage),
            repair_history: Some((h >> 24).is_multiple_of(9)),
            transmission: Some("フロアCVT".to_owned()),
            body_type: Some("ハッチバック".to_owned()),
            color: Some("白".to_owned()),
            prefecture: Some(
                ["東京都", "大阪府", "兵庫県", "愛知県", "福岡県"][(h >> 4) as usize % 5]
                    .to_owned(),
            ),
            city: Some("中央区".to_owned()),
            shop_name: Some("ベンチ自動車".to_owned()),
            ..CarDetails::default()
        },
        run_id: Uuid::nil(),
        at: domain::Timestamp::from_unix_seconds(1_764_000_000 + n as i64)
            .expect("a time in range"),
    }
}

fn splitmix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Appends one `CarListed` per listing, 1,000 new streams per append, 4 appends at a time.
async fn append_cars(pool: &PgPool, cars: usize) -> anyhow::Result<()> {
    let log = EventLog::new(pool.clone());
    let chunks: Vec<std::ops::Range<usize>> = (0..cars)
        .step_by(1000)
        .map(|start| start..(start + 1000).min(cars))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..4 {
        let log = log.clone();
        let mine: Vec<_> = chunks.iter().skip(lane).step_by(4).cloned().collect();
        tasks.spawn(async move {
            for chunk in mine {
                let streams = chunk
                    .map(|n| {
                        let event = listing(n);
                        let CarEvent::CarListed { listing_id, .. } = &event else {
                            unreachable!("listing() lists")
                        };
                        StreamAppend {
                            stream: car_stream(listing_id),
                            expected: ExpectedVersion::NoStream,
                            events: vec![NewEvent::from_domain(&event)],
                        }
                    })
                    .collect();
                log.append(AppendRequest {
                    streams,
                    metadata: Metadata::new(Source::Worker),
                })
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// `academy serve` in a child process on the scratch database.
struct Server {
    child: tokio::process::Child,
    url: String,
}

impl Server {
    async fn start(options: &PgConnectOptions) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this binary to run `serve`")?;
        let secret: String = (0..48)
            .map(|i| char::from(b'a' + (splitmix(i ^ std::process::id() as u64) % 26) as u8))
            .collect();
        let mut child = tokio::process::Command::new(exe)
            .arg("serve")
            .env("DATABASE_URL", database_url(options))
            .env("ACADEMY_LISTEN", "127.0.0.1:0")
            .env("ACADEMY_JWT_SECRET", secret)
            .env("ACADEMY_DB_MAX_CONNECTIONS", "10")
            .env("ACADEMY_CARSENSOR_ENABLED", "false")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting `academy serve`")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(address) = line.strip_prefix("academy listening on ") {
                    return anyhow::Ok(address.trim().to_owned());
                }
            }
            bail!("the server ended before listening")
        })
        .await
        .context("the server did not start listening within 2 minutes")??;
        // keep draining its stdout so it never blocks on a full pipe
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            url: format!("{address}/graphql"),
        })
    }

    /// (resident now, peak) in MiB, from `/proc`.
    fn rss_mib(&self) -> anyhow::Result<(f64, f64)> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
                .with_context(|| format!("{name} in /proc/{pid}/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM: a graceful shutdown, as in production
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A URL for the child's `DATABASE_URL` naming what `options` connect to (a TCP host or a socket folder).
fn database_url(options: &PgConnectOptions) -> String {
    let host = options.get_host();
    let user = options.get_username();
    let port = options.get_port();
    let database = options.get_database().unwrap_or("postgres");
    if host.starts_with('/') {
        format!("postgres://{user}@localhost:{port}/{database}?host={host}")
    } else {
        format!("postgres://{user}@{host}:{port}/{database}")
    }
}

/// Waits until the read model holds `cars` rows (the projection builds aside and swaps in).
async fn wait_for_cars(pool: &PgPool, cars: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let count: Result<i64, _> = sqlx::query_scalar("select count(*) from cars.cars")
            .fetch_one(pool)
            .await;
        if count.is_ok_and(|c| c as usize >= cars) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the cars read model did not reach {cars} rows in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn graphql(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut request = http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer: Value = request.send().await?.json().await?;
    if !answer["errors"].is_null() {
        bail!("GraphQL errors: {answer}");
    }
    Ok(answer)
}

/// Registers a user and logs in: a real token.
async fn sign_in(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let password = "bench password 123";
    graphql(
        http,
        url,
        None,
        &json!({
            "query": "mutation($input: RegisterInput!) { register(input: $input) { userId } }",
            "variables": { "input": { "email": "bench@example.org", "username": "bench", "password": password } }
        }),
    )
    .await?;
    let answer = graphql(
        http,
        url,
        None,
        &json!({
            "query": "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }",
            "variables": { "u": "bench", "p": password }
        }),
    )
    .await?;
    answer["data"]["login"]["accessToken"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

/// The server's rows are the table's: the 20 cheapest active Toyotas by total price, ties by id.
async fn check_answer(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    pool: &PgPool,
) -> anyhow::Result<()> {
    let answer = graphql(http, url, Some(token), body).await?;
    let served: Vec<String> = answer["data"]["cars"]["edges"]
        .as_array()
        .context("no edges")?
        .iter()
        .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
        .collect();
    let expected: Vec<Uuid> = sqlx::query_scalar(
        "select id from cars.cars where make = $1 and total_price_yen <= $2 and status = 'active'
          order by total_price_yen, id limit $3",
    )
    .bind(MAKE)
    .bind(MAX_PRICE_YEN)
    .bind(FIRST)
    .fetch_all(pool)
    .await?;
    let expected: Vec<String> = expected.iter().map(Uuid::to_string).collect();
    if served.len() != FIRST as usize || served != expected {
        bail!("the server answered other cars than the table holds: {served:?} vs {expected:?}");
    }
    Ok(())
}

#[derive(Clone)]
struct HttpRequest {
    url: String,
    authorization: String,
    body: Vec<u8>,
}

type Attempt = std::pin::Pin<Box<dyn Future<Output = bool> + Send>>;

impl HttpRequest {
    /// One request per call on this worker's own connection: whether it succeeded.
    fn send_fn(self) -> impl FnMut() -> Attempt + Send {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .build()
            .expect("an HTTP client");
        move || {
            let request = client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("authorization", &self.authorization)
                .body(self.body.clone());
            Box::pin(async move {
                match request.send().await {
                    Ok(response) if response.status().is_success() => response
                        .bytes()
                        .await
                        .is_ok_and(|body| !body.windows(9).any(|w| w == b"\"errors\":")),
                    _ => false,
                }
            })
        }
    }
}

fn statement_fn(pool: &PgPool, filter: &CarFilter) -> impl FnMut() -> Attempt + Send + use<> {
    let pool = pool.clone();
    let filter = filter.clone();
    move || {
        let pool = pool.clone();
        let filter = filter.clone();
        Box::pin(async move {
            projections::cars::cars_statement(&filter, CarOrder::PriceAsc, None, FIRST + 1)
                .build_query_as::<CarRow>()
                .fetch_all(&pool)
                .await
                .is_ok_and(|rows| rows.len() == FIRST as usize + 1)
        })
    }
}

/// Runs `workers` loops of `attempt` for `length`; their throughput and latencies.
async fn drive<F>(workers: usize, length: Duration, make: impl Fn(usize) -> F) -> Load
where
    F: FnMut() -> Attempt + Send + 'static,
{
    let start = Instant::now();
    let end = start + length;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let mut attempt = make(worker);
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut failures = 0;
            while Instant::now() < end {
                let sent = Instant::now();
                if attempt().await {
                    latencies.push(sent.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        });
    }
    let mut latencies = vec![];
    let mut failures = 0;
    while let Some(Ok((mine, failed))) = tasks.join_next().await {
        latencies.extend(mine);
        failures += failed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Load {
        requests: latencies.len(),
        per_second: latencies.len() as f64 / elapsed,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        failures,
    }
}
