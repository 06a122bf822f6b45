//! The parser against the real pages in `workers/tests/fixtures/carsensor/`, with the values its README lists.

use domain::cars::ListingId;
use reqwest::Url;
use workers::carsensor::parse::{self, detail_page, list_page};

use crate::fixture;

fn site() -> Url {
    Url::parse("https://www.carsensor.net/usedcar/bTO/s122/index.html").unwrap()
}

#[test]
fn the_listing_page_yields_both_cars_with_every_field() {
    let page = list_page(&fixture("listing_prius_truncated.html"), &site());
    assert!(page.has_listing_markup);
    assert_eq!(page.unreadable, 0);
    assert_eq!(page.next, None, "the truncated page has no pager");
    // the lease carousel's /usedcar/lease/AU… links are not listings
    let ids: Vec<&str> = page.listings.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["AU6877255381", "AU6869806001"]);

    let first = &page.listings[0];
    let d = &first.details;
    assert_eq!(d.make.as_deref(), Some("トヨタ"));
    assert_eq!(d.model.as_deref(), Some("プリウス"));
    assert_eq!(d.grade.as_deref(), Some("2.0 Z"));
    assert_eq!(first.prices.total_yen, Some(3_239_000));
    assert_eq!(first.prices.body_yen, Some(3_122_000));
    assert_eq!(d.year, Some(2023));
    assert_eq!(d.mileage_km, Some(20_000));
    assert_eq!(d.inspection.as_deref(), Some("2026(R08)年07月"));
    assert_eq!(d.repair_history, Some(false));
    assert_eq!(d.warranty.as_deref(), Some("保証付"));
    assert_eq!(d.maintenance.as_deref(), Some("法定整備付"));
    assert_eq!(d.displacement_cc, Some(2000));
    assert_eq!(d.transmission.as_deref(), Some("フロアCVT"));
    assert_eq!(d.prefecture.as_deref(), Some("兵庫県"));
    assert_eq!(d.city.as_deref(), Some("神戸市長田区"));
    assert_eq!(d.shop_name.as_deref(), Some("リバティ ドリーム長田店"));
    assert_eq!(
        d.shop_url.as_deref(),
        Some("https://www.carsensor.net/shop/hyogo/081189064/")
    );
    assert_eq!(d.body_type.as_deref(), Some("ハッチバック"));
    assert_eq!(d.color.as_deref(), Some("灰"));
    assert_eq!(
        d.photo_url.as_deref(),
        Some(
            "https://ccsrpcma.carsensor.net/CSphoto/bkkn/047/632/U00052047632/U00052047632_001L.JPG"
        )
    );
    // the tracking query (?TRCD=…) of the onclick URL never reaches the record
    assert_eq!(
        d.detail_url.as_deref(),
        Some("https://www.carsensor.net/usedcar/detail/AU6877255381/index.html")
    );
    assert!(d.missing().is_empty(), "missing: {:?}", d.missing());

    let second = &page.listings[1];
    let d = &second.details;
    assert_eq!(
        (d.make.as_deref(), d.model.as_deref(), d.grade.as_deref()),
        (Some("トヨタ"), Some("プリウス"), Some("2.0 Z"))
    );
    assert_eq!(second.prices.total_yen, Some(3_328_000));
    assert_eq!(second.prices.body_yen, Some(3_223_000));
    assert_eq!(d.year, Some(2023));
    assert_eq!(d.mileage_km, Some(14_000));
    assert_eq!(d.inspection.as_deref(), Some("車検整備付"));
    assert_eq!(d.repair_history, Some(false));
    assert_eq!(d.warranty.as_deref(), Some("保証付"));
    assert_eq!(d.maintenance.as_deref(), Some("法定整備付"));
    assert_eq!(d.displacement_cc, Some(2000));
    assert_eq!(d.transmission.as_deref(), Some("フロアCVT"));
    assert_eq!(
        (d.prefecture.as_deref(), d.city.as_deref()),
        (Some("群馬県"), Some("前橋市"))
    );
    assert_eq!(d.shop_name.as_deref(), Some("ガリバー 前橋南インター店"));
    assert_eq!(d.body_type.as_deref(), Some("ハッチバック"));
    // NFKC: the page's full-width Ｍ is stored as M
    assert_eq!(d.color.as_deref(), Some("黒M"));
    assert!(
        d.photo_url
            .as_deref()
            .unwrap()
            .ends_with("/CSphoto/bkkn/005/882/UZ0052005882/UZ0052005882_001L.JPG")
    );
    assert!(parse::failing_fields(&page).is_empty());
}

#[test]
fn the_detail_page_yields_its_heading_and_summary_boxes() {
    let url =
        Url::parse("https://www.carsensor.net/usedcar/detail/AU6877255381/index.html?TRCD=200002")
            .unwrap();
    let page = detail_page(&fixture("detail_AU6877255381_truncated.html"), &url);
    assert_eq!(page.id, Some(ListingId::parse("AU6877255381").unwrap()));
    let d = &page.details;
    assert_eq!(d.make.as_deref(), Some("トヨタ"));
    assert_eq!(d.model.as_deref(), Some("プリウス"));
    assert_eq!(d.grade.as_deref(), Some("2.0 Z"));
    assert_eq!(d.color.as_deref(), Some("アッシュ"));
    assert_eq!(d.year, Some(2023));
    assert_eq!(d.mileage_km, Some(20_000));
    assert_eq!(d.repair_history, Some(false));
    assert_eq!(d.maintenance.as_deref(), Some("付き"));
    assert_eq!(d.inspection.as_deref(), Some("2026(R08)年7月"));
    assert_eq!(
        (d.prefecture.as_deref(), d.city.as_deref()),
        (Some("兵庫県"), Some("神戸"))
    );
    assert_eq!(d.warranty.as_deref(), Some("付き / 1ヵ月 / 1,000km"));
    assert_eq!(
        d.detail_url.as_deref(),
        Some("https://www.carsensor.net/usedcar/detail/AU6877255381/index.html")
    );
}

#[test]
fn a_page_whose_cassettes_changed_class_shows_markup_but_no_listing() {
    let html = fixture("listing_prius_truncated.html")
        .replace("js_listTableCassette", "js_listTableCassette2");
    let page = list_page(&html, &site());
    assert!(page.listings.is_empty());
    assert!(
        page.has_listing_markup,
        "the page still has cassettes and detail links"
    );
}

#[test]
fn a_field_missing_from_most_listings_is_a_failing_field() {
    let html = fixture("listing_prius_truncated.html")
        .replace("<p>トヨタ</p>", "<p class=\"maker\">トヨタ</p>");
    let page = list_page(&html, &site());
    assert_eq!(page.listings.len(), 2);
    assert_eq!(parse::failing_fields(&page), ["make"]);
}
