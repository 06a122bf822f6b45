use std::sync::Arc;

use projections::log_stats::{self, LogStats};

use crate::{WAIT, append, log, start};

#[tokio::test]
async fn log_stats_counts_events_per_type_and_streams_per_category() {
    let (_db, log) = log().await;
    append(&log, "ThingHappened", 7).await;
    let last = append(&log, "OtherThing", 3).await;
    let (projections, _stop, _task) = start(&log, vec![Arc::new(LogStats)]);
    projections.wait_for(last, WAIT).await.unwrap();
    let types = log_stats::event_types(log.pool()).await.unwrap();
    let counts: Vec<(&str, i64)> = types
        .iter()
        .map(|t| (t.event_type.as_str(), t.events))
        .collect();
    assert_eq!(counts, [("ThingHappened", 7), ("OtherThing", 3)]);
    assert_eq!(types[1].last_position, last);
    let categories = log_stats::categories(log.pool()).await.unwrap();
    assert_eq!(
        (
            categories[0].category.as_str(),
            categories[0].streams,
            categories[0].events
        ),
        ("thing", 10, 10)
    );
}
