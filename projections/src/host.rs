//! What the two hosts (`notifications`, `deadlines`) share: a list of products' contributions, each for the
//! streams of one category, with the event types it reads and the tables it keeps beside the host's.

use std::sync::Arc;

use async_trait::async_trait;
use eventlog::RecordedEvent;
use sqlx::PgConnection;

use crate::ProjectionError;

/// A product's part of a host read model.
#[async_trait]
pub trait Contribution: Send + Sync + 'static {
    /// The category of the streams whose events it reads.
    fn category(&self) -> &'static str;

    /// The event types of those streams it reads.
    fn event_types(&self) -> &'static [&'static str];

    /// Creates the tables it keeps (named after its category) in the host's current schema.
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError>;
}

/// The contributions of every product to one host.
pub(crate) struct Contributions<T: ?Sized> {
    products: Vec<Arc<T>>,
}

impl<T: Contribution + ?Sized> Contributions<T> {
    pub(crate) fn new(products: Vec<Arc<T>>) -> Self {
        Self { products }
    }

    /// Every event type they read, after the host's own `also`.
    pub(crate) fn event_types(&self, also: &[&str]) -> Vec<String> {
        let types = self.products.iter().flat_map(|p| p.event_types());
        also.iter().chain(types).map(|t| (*t).to_owned()).collect()
    }

    pub(crate) async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        for product in &self.products {
            product.setup(conn).await?;
        }
        Ok(())
    }

    /// The contribution for the stream of `recorded`; an event of a category nobody reads fails `host`'s batch.
    pub(crate) fn of(&self, host: &str, recorded: &RecordedEvent) -> Result<&T, ProjectionError> {
        let category = recorded.stream_category.as_str();
        let product = self.products.iter().find(|p| p.category() == category);
        product
            .map(|p| &**p)
            .ok_or_else(|| crate::unexpected_stream(host, category))
    }
}
