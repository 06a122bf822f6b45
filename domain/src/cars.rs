//! Car listings, as the scraper observes them on carsensor.net, and the scraper's runs.
//!
//! - [`Car`] (`car-<uuid v5 of the listing id>`): one listing. Every observation goes through
//!   [`CarCommand::Observe`]: the first sight records [`CarEvent::CarListed`], a new price
//!   [`CarEvent::CarPriceChanged`] (old and new), other changes [`CarEvent::CarDetailsChanged`] with only the
//!   changed fields, and an observation that changes nothing records nothing. A listing the scraper stopped
//!   seeing is [`CarEvent::CarDelisted`]; seen again, [`CarEvent::CarRelisted`].
//! - [`ScrapeRun`] (`scraperun-<uuid>`): one run of the scraper, page by page, so an admin can audit what each
//!   run saw: the listing ids of every page, the pages that failed, the layout changes it noticed, and its tally.
//!
//! An observation says what the page showed. A field it does not show (`None`) is not "unknown now" but "not
//! seen this time": the car keeps what was known, so a page that shows less never erases information.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Decider, Snapshots, StreamId, Timestamp};

/// Namespace of car ids derived from listing ids (fixed: changing it would split every car's history).
const CAR_NAMESPACE: Uuid = Uuid::from_u128(0x5c1e_2f7a_94d3_4b60_a8e1_3d07_c6b2_91f4);

/// A carsensor listing id: `AU` followed by digits (`AU6877255381`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListingId(String);

impl ListingId {
    pub fn parse(raw: &str) -> Result<Self, CarError> {
        let raw = raw.trim();
        let digits = raw.strip_prefix("AU").unwrap_or("");
        if (4..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CarError::ListingId(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ListingId {
    type Error = CarError;
    fn try_from(raw: String) -> Result<Self, CarError> {
        Self::parse(&raw)
    }
}

impl From<ListingId> for String {
    fn from(id: ListingId) -> String {
        id.0
    }
}

impl std::fmt::Display for ListingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the car behind a listing: the same on every run.
pub fn car_id(listing: &ListingId) -> Uuid {
    Uuid::new_v5(&CAR_NAMESPACE, listing.as_str().as_bytes())
}

/// The stream of a listing.
pub fn car_stream(listing: &ListingId) -> StreamId {
    StreamId::new("car", car_id(listing)).expect("'car' is a valid category")
}

/// The stream of a scraper run.
pub fn scrape_run_stream(run: Uuid) -> StreamId {
    StreamId::new("scraperun", run).expect("'scraperun' is a valid category")
}

/// Prices in yen. `None`: the page did not show one (price on request, or not on this page).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prices {
    /// 車両本体価格: the car alone.
    pub body_yen: Option<i64>,
    /// 支払総額: what the buyer pays, registration and fees included.
    pub total_yen: Option<i64>,
}

impl Prices {
    /// These prices updated by an observation: what it shows replaces what was known, the rest stays.
    pub fn updated_by(self, observed: Prices) -> Prices {
        Prices {
            body_yen: observed.body_yen.or(self.body_yen),
            total_yen: observed.total_yen.or(self.total_yen),
        }
    }
}

/// Mirrors `Option<Option<T>>` for serde: an absent field is "unchanged", `null` is "now unknown".
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Declares [`CarDetails`] and [`DetailsPatch`] from one list of fields, so the two never drift apart.
macro_rules! car_details {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty ),* $(,)?) => {
        /// Everything a listing says about the car besides its prices. Text is NFKC-normalised by the parser.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct CarDetails {
            $( $(#[$doc])* #[serde(default)] pub $field: Option<$ty>, )*
        }

        /// The fields of [`CarDetails`] that changed, with their new values; absent fields did not change.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct DetailsPatch {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
                pub $field: Option<Option<$ty>>,
            )*
        }

        impl CarDetails {
            /// The names of every field, in order.
            pub const FIELDS: &'static [&'static str] = &[$( stringify!($field) ),*];

            /// What `observed` changes: the fields it shows with a value other than the known one.
            pub fn changes(&self, observed: &CarDetails) -> DetailsPatch {
                DetailsPatch {
                    $(
                        $field: match &observed.$field {
                            Some(new) if self.$field.as_ref() != Some(new) => Some(Some(new.clone())),
                            _ => None,
                        },
                    )*
                }
            }

            /// These details with `patch` applied.
            pub fn patched(mut self, patch: &DetailsPatch) -> CarDetails {
                $( if let Some(value) = &patch.$field { self.$field = value.clone(); } )*
                self
            }

            /// The fields this value has no value for.
            pub fn missing(&self) -> Vec<&'static str> {
                let mut missing = Vec::new();
                $( if self.$field.is_none() { missing.push(stringify!($field)); } )*
                missing
            }

            /// Fills the fields this value lacks from `other` (what a detail page adds to a list page).
            pub fn fill_from(&mut self, other: &CarDetails) {
                $( if self.$field.is_none() { self.$field = other.$field.clone(); } )*
            }
        }

        impl DetailsPatch {
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )*
            }

            /// The names of the changed fields, in declaration order.
            pub fn fields(&self) -> Vec<&'static str> {
                let mut fields = Vec::new();
                $( if self.$field.is_some() { fields.push(stringify!($field)); } )*
                fields
            }
        }
    };
}

car_details! {
    /// メーカー, e.g. トヨタ.
    make: String,
    /// 車種, e.g. プリウス.
    model: String,
    /// グレード, e.g. 2.0 Z (the dealer's catch copy after it is not kept).
    grade: String,
    /// 年式, western year.
    year: i32,
    /// 走行距離 in km.
    mileage_km: i64,
    /// 車検, as shown: `2026(R08)年07月`, `車検整備付`, `車検整備無`.
    inspection: String,
    /// 修復歴: whether the car has a repair history.
    repair_history: bool,
    /// 保証, as shown: `保証付`, `保証無`, `付き / 1ヵ月 / 1,000km`.
    warranty: String,
    /// 整備, as shown: `法定整備付`.
    maintenance: String,
    /// 排気量 in cc.
    displacement_cc: i32,
    /// ミッション, e.g. フロアCVT.
    transmission: String,
    /// ボディタイプ, e.g. ハッチバック.
    body_type: String,
    /// 色, e.g. 灰, 黒M.
    color: String,
    /// 都道府県.
    prefecture: String,
    /// 市区町村.
    city: String,
    /// The dealer.
    shop_name: String,
    /// The dealer's page, absolute.
    shop_url: String,
    /// The main photo, absolute.
    photo_url: String,
    /// The listing's detail page, absolute, without tracking query.
    detail_url: String,
}

/// One listing as a page showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub id: ListingId,
    pub prices: Prices,
    pub details: CarDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarError {
    #[error("a listing id is AU followed by digits; got {0:?}")]
    ListingId(String),
    #[error("listing {observed} observed in the stream of listing {stream}")]
    ListingMismatch { stream: String, observed: String },
    #[error("this car was never listed")]
    NotListed,
}

// ---------------------------------------------------------------------------------------------------------------
// Car

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per observed listing, dropped once decided: boxing would buy nothing
pub enum CarCommand {
    /// What a scraper run saw of the listing.
    Observe {
        listing: Listing,
        run_id: Uuid,
        at: Timestamp,
    },
    /// The listing was missing from `missed_runs` consecutive complete runs (the caller counted them).
    Delist {
        run_id: Uuid,
        missed_runs: u32,
        at: Timestamp,
    },
}

/// `run_id` is the scraper run that saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CarEvent {
    CarListed {
        listing_id: ListingId,
        prices: Prices,
        details: CarDetails,
        run_id: Uuid,
        at: Timestamp,
    },
    CarPriceChanged {
        old: Prices,
        new: Prices,
        run_id: Uuid,
        at: Timestamp,
    },
    CarDetailsChanged {
        changes: DetailsPatch,
        run_id: Uuid,
        at: Timestamp,
    },
    CarDelisted {
        missed_runs: u32,
        run_id: Uuid,
        at: Timestamp,
    },
    CarRelisted {
        run_id: Uuid,
        at: Timestamp,
    },
}

impl CarEvent {}

crate::tagged_events!(CarEvent {
    CarListed,
    CarPriceChanged,
    CarDetailsChanged,
    CarDelisted,
    CarRelisted
});

/// Whether a listing is on the market, as the `cars` read model stores it ([`CarStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarStatus {
    /// Listed (or relisted) and seen by the recent complete runs.
    Active,
    /// The scraper stopped seeing it: [`CarEvent::CarDelisted`].
    Delisted,
}

impl CarStatus {
    pub const ALL: [CarStatus; 2] = [CarStatus::Active, CarStatus::Delisted];

    /// The stable name of the status (the `cars` read model stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            CarStatus::Active => "active",
            CarStatus::Delisted => "delisted",
        }
    }

    /// The status [`CarStatus::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == stored)
    }
}

/// What happened to a listing: the kind of an entry of its timeline, one per [`CarEvent`], as the `cars` read
/// model stores it ([`CarChange::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarChange {
    /// [`CarEvent::CarListed`].
    Listed,
    /// [`CarEvent::CarPriceChanged`].
    PriceChanged,
    /// [`CarEvent::CarDetailsChanged`].
    DetailsChanged,
    /// [`CarEvent::CarDelisted`].
    Delisted,
    /// [`CarEvent::CarRelisted`].
    Relisted,
}

impl CarChange {
    pub const ALL: [CarChange; 5] = [
        CarChange::Listed,
        CarChange::PriceChanged,
        CarChange::DetailsChanged,
        CarChange::Delisted,
        CarChange::Relisted,
    ];

    /// The stable name of the change (the `cars` read model stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            CarChange::Listed => "listed",
            CarChange::PriceChanged => "price_changed",
            CarChange::DetailsChanged => "details_changed",
            CarChange::Delisted => "delisted",
            CarChange::Relisted => "relisted",
        }
    }

    /// The change [`CarChange::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|change| change.as_str() == stored)
    }
}

/// A listing as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarState {
    pub listing_id: ListingId,
    pub prices: Prices,
    pub details: CarDetails,
    pub delisted: bool,
}

pub struct Car;

impl Decider for Car {
    type Command = CarCommand;
    type Event = CarEvent;
    type State = Option<CarState>;
    type Error = CarError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(command: &CarCommand, state: &Self::State) -> Result<Vec<CarEvent>, CarError> {
        match command {
            CarCommand::Observe {
                listing,
                run_id,
                at,
            } => observe(state.as_ref(), listing, *run_id, *at),
            CarCommand::Delist {
                run_id,
                missed_runs,
                at,
            } => delist(state.as_ref(), *run_id, *missed_runs, *at),
        }
    }

    fn evolve(state: Self::State, event: &CarEvent) -> Self::State {
        match (event, state) {
            (
                CarEvent::CarListed {
                    listing_id,
                    prices,
                    details,
                    ..
                },
                _,
            ) => Some(CarState {
                listing_id: listing_id.clone(),
                prices: *prices,
                details: details.clone(),
                delisted: false,
            }),
            (CarEvent::CarPriceChanged { new, .. }, Some(car)) => Some(CarState {
                prices: *new,
                ..car
            }),
            (CarEvent::CarDetailsChanged { changes, .. }, Some(car)) => Some(CarState {
                details: car.details.clone().patched(changes),
                ..car
            }),
            (CarEvent::CarDelisted { .. }, Some(car)) => Some(CarState {
                delisted: true,
                ..car
            }),
            (CarEvent::CarRelisted { .. }, Some(car)) => Some(CarState {
                delisted: false,
                ..car
            }),
            (_, None) => None,
        }
    }
}

// Car commands, one function each, in the order of `CarCommand`.

/// First seen, a listing is listed; seen again, its changes are recorded and, if it was delisted, it is relisted.
fn observe(
    state: Option<&CarState>,
    listing: &Listing,
    run_id: Uuid,
    at: Timestamp,
) -> Result<Vec<CarEvent>, CarError> {
    let Some(car) = state else {
        return Ok(vec![CarEvent::CarListed {
            listing_id: listing.id.clone(),
            prices: listing.prices,
            details: listing.details.clone(),
            run_id,
            at,
        }]);
    };
    if listing.id != car.listing_id {
        return Err(CarError::ListingMismatch {
            stream: car.listing_id.to_string(),
            observed: listing.id.to_string(),
        });
    }
    let mut events = Vec::new();
    if car.delisted {
        events.push(CarEvent::CarRelisted { run_id, at });
    }
    let prices = car.prices.updated_by(listing.prices);
    if prices != car.prices {
        events.push(CarEvent::CarPriceChanged {
            old: car.prices,
            new: prices,
            run_id,
            at,
        });
    }
    let changes = car.details.changes(&listing.details);
    if !changes.is_empty() {
        events.push(CarEvent::CarDetailsChanged {
            changes,
            run_id,
            at,
        });
    }
    Ok(events)
}

/// A listed car is delisted once.
fn delist(
    state: Option<&CarState>,
    run_id: Uuid,
    missed_runs: u32,
    at: Timestamp,
) -> Result<Vec<CarEvent>, CarError> {
    match state {
        None => Err(CarError::NotListed),
        Some(car) if car.delisted => Ok(vec![]),
        Some(_) => Ok(vec![CarEvent::CarDelisted {
            missed_runs,
            run_id,
            at,
        }]),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ScrapeRun

/// What a run did, as recorded when it completes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTally {
    /// Pages fetched and parsed.
    pub pages: u32,
    /// Distinct listings seen.
    pub listings_seen: u32,
    /// Listings seen for the first time.
    pub new: u32,
    /// Listings whose price or details changed (relisted ones included).
    pub changed: u32,
    /// Listings seen again after being delisted.
    pub relisted: u32,
    /// Listings delisted at the end of this run.
    pub delisted: u32,
    /// Pages that failed, layout changes, and listings that could not be recorded.
    pub errors: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrapeRunCommand {
    Start {
        start_urls: Vec<String>,
        at: Timestamp,
    },
    RecordPage {
        url: String,
        page: u32,
        listings: Vec<ListingId>,
        at: Timestamp,
    },
    RecordFailure {
        url: String,
        error: String,
        attempts: u32,
        at: Timestamp,
    },
    ReportLayoutChange {
        url: String,
        reason: String,
        at: Timestamp,
    },
    /// `complete`: every start page was followed to its last page without a failure or a layout change; only
    /// complete runs count towards delisting.
    Complete {
        tally: RunTally,
        complete: bool,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ScrapeRunEvent {
    ScrapeRunStarted {
        start_urls: Vec<String>,
        at: Timestamp,
    },
    /// A page was fetched and parsed; `listings` are the ids it showed, in page order.
    ScrapePageScraped {
        url: String,
        page: u32,
        listings: Vec<ListingId>,
        at: Timestamp,
    },
    /// A page could not be fetched or read (after `attempts` tries), or robots.txt forbids it.
    ScrapePageFailed {
        url: String,
        error: String,
        attempts: u32,
        at: Timestamp,
    },
    /// The page no longer looks like the parser expects.
    ScrapeLayoutChanged {
        url: String,
        reason: String,
        at: Timestamp,
    },
    ScrapeRunCompleted {
        tally: RunTally,
        complete: bool,
        at: Timestamp,
    },
}

impl ScrapeRunEvent {}

crate::tagged_events!(ScrapeRunEvent {
    ScrapeRunStarted,
    ScrapePageScraped,
    ScrapePageFailed,
    ScrapeLayoutChanged,
    ScrapeRunCompleted
});

/// What went wrong with a page of a run, as the `cars` read model stores it ([`ScrapeProblemKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScrapeProblemKind {
    /// The page was not fetched, or robots.txt forbids it: [`ScrapeRunEvent::ScrapePageFailed`].
    Failure,
    /// The page changed shape: [`ScrapeRunEvent::ScrapeLayoutChanged`].
    Layout,
}

impl ScrapeProblemKind {
    pub const ALL: [ScrapeProblemKind; 2] = [ScrapeProblemKind::Failure, ScrapeProblemKind::Layout];

    /// The stable name of the kind (the `cars` read model stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            ScrapeProblemKind::Failure => "failure",
            ScrapeProblemKind::Layout => "layout",
        }
    }

    /// The kind [`ScrapeProblemKind::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapeRunState {
    pub started: bool,
    pub completed: bool,
    pub pages: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeRunError {
    #[error("this run has not started")]
    NotStarted,
    #[error("this run is already completed")]
    AlreadyCompleted,
}

pub struct ScrapeRun;

/// Events between two snapshots of a run's state.
pub const SCRAPE_RUN_SNAPSHOT_EVERY: i64 = 64;

impl Decider for ScrapeRun {
    type Command = ScrapeRunCommand;
    type Event = ScrapeRunEvent;
    type State = ScrapeRunState;
    type Error = ScrapeRunError;

    fn initial_state() -> ScrapeRunState {
        ScrapeRunState::default()
    }

    /// A run's stream grows by a page at a time (3,334 pages for 100,000 listings), and every page is a command
    /// on it: without snapshots, recording page n reads the n events before it.
    fn snapshots() -> Option<Snapshots<Self::State>> {
        Some(Snapshots::json(
            "scraperun-state/1",
            SCRAPE_RUN_SNAPSHOT_EVERY,
        ))
    }

    fn decide(
        command: &ScrapeRunCommand,
        state: &ScrapeRunState,
    ) -> Result<Vec<ScrapeRunEvent>, ScrapeRunError> {
        use ScrapeRunCommand::*;
        match command {
            Start { .. } if state.started => Ok(vec![]),
            Start { start_urls, at } => Ok(vec![ScrapeRunEvent::ScrapeRunStarted {
                start_urls: start_urls.clone(),
                at: *at,
            }]),
            Complete { .. } if state.completed => Ok(vec![]),
            _ if !state.started => Err(ScrapeRunError::NotStarted),
            _ if state.completed => Err(ScrapeRunError::AlreadyCompleted),
            RecordPage {
                url,
                page,
                listings,
                at,
            } => Ok(vec![ScrapeRunEvent::ScrapePageScraped {
                url: url.clone(),
                page: *page,
                listings: listings.clone(),
                at: *at,
            }]),
            RecordFailure {
                url,
                error,
                attempts,
                at,
            } => Ok(vec![ScrapeRunEvent::ScrapePageFailed {
                url: url.clone(),
                error: error.clone(),
                attempts: *attempts,
                at: *at,
            }]),
            ReportLayoutChange { url, reason, at } => {
                Ok(vec![ScrapeRunEvent::ScrapeLayoutChanged {
                    url: url.clone(),
                    reason: reason.clone(),
                    at: *at,
                }])
            }
            Complete {
                tally,
                complete,
                at,
            } => Ok(vec![ScrapeRunEvent::ScrapeRunCompleted {
                tally: *tally,
                complete: *complete,
                at: *at,
            }]),
        }
    }

    fn evolve(mut state: ScrapeRunState, event: &ScrapeRunEvent) -> ScrapeRunState {
        match event {
            ScrapeRunEvent::ScrapeRunStarted { .. } => state.started = true,
            ScrapeRunEvent::ScrapePageScraped { .. } => state.pages += 1,
            ScrapeRunEvent::ScrapeRunCompleted { .. } => state.completed = true,
            ScrapeRunEvent::ScrapePageFailed { .. }
            | ScrapeRunEvent::ScrapeLayoutChanged { .. } => {}
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DomainEvent;
    use crate::testing::{at, given};

    fn id() -> ListingId {
        ListingId::parse("AU6877255381").unwrap()
    }

    fn run() -> Uuid {
        Uuid::from_u128(7)
    }

    fn prius() -> Listing {
        Listing {
            id: id(),
            prices: Prices {
                body_yen: Some(3_122_000),
                total_yen: Some(3_239_000),
            },
            details: CarDetails {
                make: Some("トヨタ".into()),
                model: Some("プリウス".into()),
                grade: Some("2.0 Z".into()),
                year: Some(2023),
                mileage_km: Some(20_000),
                repair_history: Some(false),
                color: Some("灰".into()),
                ..CarDetails::default()
            },
        }
    }

    fn observe(listing: Listing, seconds: i64) -> CarCommand {
        CarCommand::Observe {
            listing,
            run_id: run(),
            at: at(seconds),
        }
    }

    fn listed() -> CarEvent {
        CarEvent::CarListed {
            listing_id: id(),
            prices: prius().prices,
            details: prius().details,
            run_id: run(),
            at: at(10),
        }
    }

    #[test]
    fn listing_ids_are_au_and_digits() {
        assert_eq!(id().as_str(), "AU6877255381");
        for bad in ["", "AU", "6877255381", "AU68a77", "au6877255381", "AU12"] {
            assert!(ListingId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            car_id(&id()),
            car_id(&ListingId::parse(" AU6877255381 ").unwrap())
        );
        assert_eq!(car_stream(&id()).category(), "car");
    }

    #[test]
    fn the_first_sight_of_a_listing_lists_the_car() {
        given::<Car>([]).when(observe(prius(), 10)).then([listed()]);
    }

    #[test]
    fn seeing_the_same_listing_again_records_nothing() {
        given::<Car>([listed()]).when(observe(prius(), 20)).then([]);
    }

    #[test]
    fn a_new_price_records_the_old_and_the_new_price() {
        let mut cheaper = prius();
        cheaper.prices.total_yen = Some(3_100_000);
        given::<Car>([listed()])
            .when(observe(cheaper, 20))
            .then([CarEvent::CarPriceChanged {
                old: prius().prices,
                new: Prices {
                    body_yen: Some(3_122_000),
                    total_yen: Some(3_100_000),
                },
                run_id: run(),
                at: at(20),
            }]);
    }

    #[test]
    fn other_changes_record_only_the_changed_fields() {
        let mut driven = prius();
        driven.details.mileage_km = Some(21_000);
        driven.details.color = Some("白".into());
        given::<Car>([listed()])
            .when(observe(driven, 20))
            .then([CarEvent::CarDetailsChanged {
                changes: DetailsPatch {
                    mileage_km: Some(Some(21_000)),
                    color: Some(Some("白".into())),
                    ..DetailsPatch::default()
                },
                run_id: run(),
                at: at(20),
            }]);
    }

    #[test]
    fn a_field_the_page_does_not_show_keeps_its_known_value() {
        let mut sparse = prius();
        sparse.details.mileage_km = None;
        sparse.prices.body_yen = None;
        given::<Car>([listed()]).when(observe(sparse, 20)).then([]);
    }

    #[test]
    fn a_price_and_a_detail_change_together_record_both() {
        let mut changed = prius();
        changed.prices.total_yen = Some(3_000_000);
        changed.details.mileage_km = Some(25_000);
        let state = Car::fold(&[listed()]);
        let events = Car::decide(&observe(changed, 30), &state).unwrap();
        let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, ["CarPriceChanged", "CarDetailsChanged"]);
        let after = events.iter().fold(state, Car::evolve).unwrap();
        assert_eq!(after.prices.total_yen, Some(3_000_000));
        assert_eq!(after.details.mileage_km, Some(25_000));
        assert_eq!(after.details.color.as_deref(), Some("灰"));
    }

    #[test]
    fn a_listing_observed_in_another_listings_stream_is_refused() {
        let mut other = prius();
        other.id = ListingId::parse("AU1111111111").unwrap();
        given::<Car>([listed()])
            .when(observe(other, 20))
            .then_err(CarError::ListingMismatch {
                stream: "AU6877255381".into(),
                observed: "AU1111111111".into(),
            });
    }

    #[test]
    fn a_missing_listing_is_delisted_once() {
        let delist = CarCommand::Delist {
            run_id: run(),
            missed_runs: 3,
            at: at(40),
        };
        let delisted = CarEvent::CarDelisted {
            missed_runs: 3,
            run_id: run(),
            at: at(40),
        };
        given::<Car>([listed()])
            .when(delist.clone())
            .then([delisted.clone()]);
        given::<Car>([listed(), delisted])
            .when(delist.clone())
            .then([]);
        given::<Car>([]).when(delist).then_err(CarError::NotListed);
    }

    #[test]
    fn a_delisted_listing_seen_again_is_relisted_with_its_changes() {
        let delisted = CarEvent::CarDelisted {
            missed_runs: 3,
            run_id: run(),
            at: at(40),
        };
        given::<Car>([listed(), delisted.clone()])
            .when(observe(prius(), 50))
            .then([CarEvent::CarRelisted {
                run_id: run(),
                at: at(50),
            }]);
        let mut cheaper = prius();
        cheaper.prices.total_yen = Some(2_900_000);
        let state = Car::fold(&[listed(), delisted]);
        let events = Car::decide(&observe(cheaper, 50), &state).unwrap();
        let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, ["CarRelisted", "CarPriceChanged"]);
    }

    #[test]
    fn a_details_patch_stores_only_changed_fields_and_null_for_unknown() {
        let patch = DetailsPatch {
            mileage_km: Some(None),
            color: Some(Some("白".into())),
            ..DetailsPatch::default()
        };
        let json = serde_json::to_value(&patch).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "mileage_km": null, "color": "白" })
        );
        let back: DetailsPatch = serde_json::from_value(json).unwrap();
        assert_eq!(back, patch);
        assert_eq!(back.fields(), ["mileage_km", "color"]);
        let details = prius().details.patched(&patch);
        assert_eq!(details.mileage_km, None);
        assert_eq!(details.color.as_deref(), Some("白"));
    }

    #[test]
    fn a_run_records_pages_failures_and_its_tally_then_nothing_more() {
        let started = ScrapeRunEvent::ScrapeRunStarted {
            start_urls: vec!["https://example.org/usedcar/index.html".into()],
            at: at(1),
        };
        given::<ScrapeRun>([])
            .when(ScrapeRunCommand::Start {
                start_urls: vec!["https://example.org/usedcar/index.html".into()],
                at: at(1),
            })
            .then([started.clone()]);
        given::<ScrapeRun>([started.clone()])
            .when(ScrapeRunCommand::RecordPage {
                url: "u".into(),
                page: 1,
                listings: vec![id()],
                at: at(2),
            })
            .then([ScrapeRunEvent::ScrapePageScraped {
                url: "u".into(),
                page: 1,
                listings: vec![id()],
                at: at(2),
            }]);
        let completed = ScrapeRunEvent::ScrapeRunCompleted {
            tally: RunTally {
                pages: 1,
                ..RunTally::default()
            },
            complete: true,
            at: at(3),
        };
        given::<ScrapeRun>([started.clone()])
            .when(ScrapeRunCommand::Complete {
                tally: RunTally {
                    pages: 1,
                    ..RunTally::default()
                },
                complete: true,
                at: at(3),
            })
            .then([completed.clone()]);
        given::<ScrapeRun>([started.clone(), completed.clone()])
            .when(ScrapeRunCommand::ReportLayoutChange {
                url: "u".into(),
                reason: "r".into(),
                at: at(4),
            })
            .then_err(ScrapeRunError::AlreadyCompleted);
        given::<ScrapeRun>([started, completed])
            .when(ScrapeRunCommand::Complete {
                tally: RunTally::default(),
                complete: false,
                at: at(5),
            })
            .then([]);
        given::<ScrapeRun>([])
            .when(ScrapeRunCommand::RecordFailure {
                url: "u".into(),
                error: "503".into(),
                attempts: 3,
                at: at(1),
            })
            .then_err(ScrapeRunError::NotStarted);
    }
}
