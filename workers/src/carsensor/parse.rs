//! carsensor.net pages → normalised listings, with the `scraper` crate. Pure: no I/O, no clock.
//!
//! A list page (一覧) holds one `div.cassette.js_listTableCassette` per car; a detail page (物件詳細) holds
//! `div.detailMain[data-vehicle-id]` with an `h1.title1` heading and `.specWrap__box` summary boxes. Text is
//! NFKC-normalised (full-width letters and digits become ASCII, `黒Ｍ` → `黒M`) with whitespace collapsed.
//! Prices are read in 万円 (10,000 yen) with exact integer arithmetic; years in western or era form; mileage
//! in km or 万km. A value that does not parse is `None`, never a panic.

use std::sync::LazyLock;

use domain::cars::{CarDetails, Listing, ListingId, Prices};
use reqwest::Url;
use scraper::{ElementRef, Html, Selector};
use unicode_normalization::UnicodeNormalization;

/// What a list page holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub listings: Vec<Listing>,
    /// `link[rel=next]` (or `a[rel=next]`), absolute.
    pub next: Option<Url>,
    /// Whether the page has listing markup at all (cassettes or links to detail pages): a page with markup but
    /// no listing parsed means the layout changed.
    pub has_listing_markup: bool,
    /// Cassettes whose listing id could not be read.
    pub unreadable: usize,
    /// Whether the body is an HTML page at all (it has elements a web page is built of): a page without
    /// listings that is one is a results page without results; one that is not is garbage.
    pub is_html: bool,
}

/// What a detail page holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailPage {
    pub id: Option<ListingId>,
    pub prices: Prices,
    pub details: CarDetails,
}

fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("selector {css:?} is valid CSS: {e}"))
}

macro_rules! selectors {
    ($($name:ident = $css:literal;)*) => {
        $( static $name: LazyLock<Selector> = LazyLock::new(|| selector($css)); )*
    };
}

selectors! {
    CASSETTE = "div.cassette.js_listTableCassette";
    NEXT = "link[rel=next], a[rel=next]";
    MARKUP = "div.cassette, a[href*='/usedcar/detail/AU']";
    STRUCTURE = "title, meta, link, script, div, main, section, article, header, footer, nav, p, ul, ol, table, form, h1, h2, h3";
    INFO_CONTAINER = "div.cassetteMain__carInfoContainer";
    TITLE_LINK = "h3.cassetteMain__title a";
    DETAIL_LINK = "a[href*='/usedcar/detail/AU']";
    TOTAL_MAIN = ".totalPrice__mainPriceNum";
    TOTAL_SUB = ".totalPrice__subPriceNum";
    BASE_MAIN = ".basePrice__mainPriceNum";
    BASE_SUB = ".basePrice__subPriceNum";
    SPEC_BOX = ".specList__detailBox";
    DT = "dt";
    DD = "dd";
    BODY_INFO = "li.carBodyInfoList__item";
    AREA = ".cassetteSub__area p";
    SHOP_LINK = ".cassetteSub__shop a";
    MAIN_IMG = ".cassetteMain__mainImg";
    IMG = "img";
    NOSCRIPT = "noscript";
    DETAIL_MAIN = "div.detailMain";
    DETAIL_TITLE = "h1.title1";
    SPAN = "span";
    SPEC_WRAP_BOX = ".specWrap__box";
    SPEC_WRAP_TITLE = ".specWrap__box__title";
    SPEC_WRAP_NUM = ".specWrap__box__num";
    SPEC_WRAP_ERA = ".specWrap__boxEraName";
    SPEC_WRAP_UNIT = ".specWrap__boxUnit";
    SPEC_WRAP_DETAIL = ".specWrap__boxDetail";
}

/// NFKC, whitespace collapsed to single spaces, trimmed. `None` when nothing is left.
pub fn normalise(raw: &str) -> Option<String> {
    let text: String = raw.nfkc().collect();
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!collapsed.is_empty()).then_some(collapsed)
}

fn text_of(element: ElementRef<'_>) -> String {
    element.text().collect()
}

fn first_text(scope: ElementRef<'_>, selector: &Selector) -> Option<String> {
    scope.select(selector).next().map(text_of)
}

/// `323` + `.9` 万円 → 3,239,000 yen. Exact: no floating point.
pub fn man_yen(raw: &str) -> Option<i64> {
    let text = normalise(raw)?.replace([',', ' '], "");
    let text = text.trim_end_matches("万円").trim_end_matches('万');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 4 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<i64>().ok()? * 10_i64.pow(4 - fraction.len() as u32)
    };
    whole.checked_mul(10_000)?.checked_add(fraction)
}

/// A western year (`2023`), or a Japanese era year (`R05`, `H27`, `平成27年`), to the western year.
pub fn year(raw: &str) -> Option<i32> {
    let text = normalise(raw)?;
    // a four-digit western year anywhere wins
    let digits: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(western) = digits
        .iter()
        .filter(|d| d.len() == 4)
        .find_map(|d| d.parse::<i32>().ok().filter(|y| (1900..=2100).contains(y)))
    {
        return Some(western);
    }
    const ERAS: [(&str, &str, i32); 5] = [
        ("R", "令和", 2018),
        ("H", "平成", 1988),
        ("S", "昭和", 1925),
        ("T", "大正", 1911),
        ("M", "明治", 1867),
    ];
    for (letter, name, base) in ERAS {
        for prefix in [letter, name] {
            if let Some(at) = text.find(prefix) {
                let rest = &text[at + prefix.len()..];
                let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = number.parse::<i32>()
                    && (1..=64).contains(&n)
                {
                    return Some(base + n);
                }
                if rest.starts_with('元') {
                    return Some(base + 1);
                }
            }
        }
    }
    None
}

/// `2万km` → 20,000; `1.4万km` → 14,000; `8,500km` → 8,500; `不明` (unknown) → `None`.
pub fn mileage_km(raw: &str) -> Option<i64> {
    let text = normalise(raw)?.replace([',', ' '], "").to_lowercase();
    if let Some(man) = text.strip_suffix("万km") {
        return man_yen(man);
    }
    let km = text.strip_suffix("km").unwrap_or(&text);
    if !km.is_empty() && km.bytes().all(|b| b.is_ascii_digit()) {
        return km.parse().ok();
    }
    None
}

/// `2000CC` → 2000.
pub fn displacement_cc(raw: &str) -> Option<i32> {
    let text = normalise(raw)?.to_lowercase().replace([',', ' '], "");
    let number = text.strip_suffix("cc")?;
    number.parse().ok().filter(|cc| *cc > 0)
}

/// 修復歴: `なし` → false, `あり` → true.
pub fn repair_history(raw: &str) -> Option<bool> {
    match normalise(raw)?.as_str() {
        "なし" | "無" | "無し" => Some(false),
        "あり" | "有" | "有り" => Some(true),
        _ => None,
    }
}

/// `href` against the page's URL, without query or fragment (carsensor's `?TRCD=…` tracking parameters).
fn absolute(base: &Url, href: &str, keep_query: bool) -> Option<Url> {
    let mut url = base.join(href.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    if !keep_query {
        url.set_query(None);
    }
    url.set_fragment(None);
    Some(url)
}

/// The listing id in a detail link (`/usedcar/detail/AU6877255381/index.html`).
fn listing_in_href(href: &str) -> Option<ListingId> {
    let rest = &href[href.find("/usedcar/detail/")? + "/usedcar/detail/".len()..];
    ListingId::parse(rest.split('/').next()?).ok()
}

/// Reads a list page fetched from `url`.
pub fn list_page(html: &str, url: &Url) -> ListPage {
    let document = Html::parse_document(html);
    let mut listings = Vec::new();
    let mut unreadable = 0;
    for cassette in document.select(&CASSETTE) {
        match cassette_listing(cassette, url) {
            Some(listing) => listings.push(listing),
            None => unreadable += 1,
        }
    }
    // a listing shown twice on one page (a promoted slot) counts once
    let mut seen = std::collections::HashSet::new();
    listings.retain(|l: &Listing| seen.insert(l.id.clone()));
    let next = document
        .select(&NEXT)
        .find_map(|e| e.attr("href"))
        .and_then(|href| absolute(url, href, true));
    ListPage {
        listings,
        next,
        has_listing_markup: document.select(&MARKUP).next().is_some(),
        unreadable,
        is_html: document.select(&STRUCTURE).next().is_some(),
    }
}

fn cassette_listing(cassette: ElementRef<'_>, base: &Url) -> Option<Listing> {
    let detail_href = cassette
        .select(&TITLE_LINK)
        .chain(cassette.select(&DETAIL_LINK))
        .find_map(|a| a.attr("href").filter(|h| h.contains("/usedcar/detail/")));
    let id = cassette
        .attr("id")
        .and_then(|id| ListingId::parse(id.trim_end_matches("_cas")).ok())
        .or_else(|| detail_href.and_then(listing_in_href))?;

    let mut details = CarDetails {
        detail_url: detail_href
            .and_then(|href| absolute(base, href, false))
            .map(String::from),
        ..CarDetails::default()
    };
    if let Some(info) = cassette.select(&INFO_CONTAINER).next() {
        // the maker is the container's first paragraph without a class
        details.make = info
            .children()
            .filter_map(ElementRef::wrap)
            .find(|e| e.value().name() == "p" && e.value().attr("class").is_none())
            .and_then(|p| normalise(&text_of(p)));
    }
    if let Some(title) = cassette.select(&TITLE_LINK).next() {
        let (model, grade) = model_and_grade(&text_of(title));
        details.model = model;
        details.grade = grade;
    }
    let prices = Prices {
        total_yen: price(cassette, &TOTAL_MAIN, &TOTAL_SUB),
        body_yen: price(cassette, &BASE_MAIN, &BASE_SUB),
    };
    for spec in cassette.select(&SPEC_BOX) {
        let (Some(title), Some(data)) = (first_text(spec, &DT), first_text(spec, &DD)) else {
            continue;
        };
        let title = normalise(&title).unwrap_or_default();
        match title.as_str() {
            "年式" => details.year = year(&data),
            "走行距離" => details.mileage_km = mileage_km(&data),
            "車検" => details.inspection = normalise(&data),
            "修復歴" => details.repair_history = repair_history(&data),
            "保証" => details.warranty = normalise(&data),
            "整備" => details.maintenance = normalise(&data),
            "排気量" => details.displacement_cc = displacement_cc(&data),
            "ミッション" => details.transmission = normalise(&data),
            _ => {}
        }
    }
    let body_info: Vec<String> = cassette
        .select(&BODY_INFO)
        .filter_map(|li| normalise(&text_of(li)))
        .collect();
    details.body_type = body_info.first().cloned();
    details.color = body_info.get(1).cloned();
    let area: Vec<String> = cassette
        .select(&AREA)
        .filter_map(|p| normalise(&text_of(p)))
        .collect();
    details.prefecture = area.first().cloned();
    details.city = area.get(1).cloned();
    if let Some(shop) = cassette.select(&SHOP_LINK).next() {
        details.shop_name = shop
            .attr("title")
            .and_then(normalise)
            .or_else(|| normalise(&text_of(shop)));
        details.shop_url = shop
            .attr("href")
            .and_then(|href| absolute(base, href, false))
            .map(String::from);
    }
    details.photo_url =
        main_photo(cassette).and_then(|src| absolute(base, &src, true).map(String::from));
    Some(Listing {
        id,
        prices,
        details,
    })
}

/// `プリウス&nbsp;2.0 Z&nbsp;catch copy…` → (`プリウス`, `2.0 Z`). The site separates model, grade and the
/// dealer's catch copy with no-break spaces, which NFKC would turn into plain spaces: split first.
fn model_and_grade(raw: &str) -> (Option<String>, Option<String>) {
    let mut parts = raw.split('\u{a0}');
    let first = parts.next().unwrap_or_default();
    match parts.next() {
        Some(grade) => (normalise(first), normalise(grade)),
        // no separators: the first word is the model, the grade cannot be told from the catch copy
        None => (
            normalise(first).and_then(|t| t.split(' ').next().map(str::to_owned)),
            None,
        ),
    }
}

fn price(scope: ElementRef<'_>, main: &Selector, sub: &Selector) -> Option<i64> {
    let main = first_text(scope, main)?;
    let sub = first_text(scope, sub).unwrap_or_default();
    man_yen(&format!("{}{}", main.trim(), sub.trim()))
}

/// The main photo's `src` (or lazy `data-original`). Inside `<noscript>` the parser keeps the markup as text
/// (it parses as a browser with scripting on), so that text is searched too.
fn main_photo(cassette: ElementRef<'_>) -> Option<String> {
    let container = cassette.select(&MAIN_IMG).next()?;
    if let Some(src) = container
        .select(&IMG)
        .find_map(|img| img.attr("data-original").or_else(|| img.attr("src")))
        .filter(|src| !src.contains("/loading/"))
    {
        return Some(src.to_owned());
    }
    container.select(&NOSCRIPT).find_map(|noscript| {
        let markup = text_of(noscript);
        let start = markup.find("src=\"")? + 5;
        let end = markup[start..].find('"')?;
        Some(markup[start..start + end].replace("&amp;", "&"))
    })
}

/// Reads a detail page fetched from `url`.
pub fn detail_page(html: &str, url: &Url) -> DetailPage {
    let document = Html::parse_document(html);
    let main = document.select(&DETAIL_MAIN).next();
    let id = main
        .and_then(|m| m.attr("data-vehicle-id"))
        .and_then(|id| ListingId::parse(id).ok())
        .or_else(|| listing_in_href(url.path()));
    let mut details = CarDetails {
        detail_url: absolute(url, url.as_str(), false).map(String::from),
        ..CarDetails::default()
    };
    if let Some(h1) = document.select(&DETAIL_TITLE).next() {
        // the heading's own text is `maker&nbsp;model`; its span holds grade, catch copy and （colour）
        let own: String = h1
            .children()
            .filter_map(|node| node.value().as_text().map(|t| t.to_string()))
            .collect();
        let mut names = own.split('\u{a0}');
        details.make = names.next().and_then(normalise);
        details.model = names.next().and_then(normalise);
        if let Some(span) = h1.select(&SPAN).next() {
            let text = text_of(span);
            let grade_end = text.find(['\u{3000}', '\u{a0}']).unwrap_or(text.len());
            details.grade = normalise(&text[..grade_end]);
            let trimmed = text.trim_end();
            if let Some(body) = trimmed.strip_suffix('）')
                && let Some(open) = body.rfind('（')
            {
                details.color = normalise(&body[open + '（'.len_utf8()..]);
            }
        }
    }
    for boxed in document.select(&SPEC_WRAP_BOX) {
        let Some(title) = first_text(boxed, &SPEC_WRAP_TITLE).and_then(|t| normalise(&t)) else {
            continue;
        };
        let num = first_text(boxed, &SPEC_WRAP_NUM).unwrap_or_default();
        let era = first_text(boxed, &SPEC_WRAP_ERA).unwrap_or_default();
        let unit = first_text(boxed, &SPEC_WRAP_UNIT).unwrap_or_default();
        let detail: String = boxed
            .select(&SPEC_WRAP_DETAIL)
            .map(text_of)
            .collect::<Vec<_>>()
            .join("");
        match title.as_str() {
            "年式" => details.year = year(&format!("{num}{era}{detail}")),
            "走行距離" => {
                details.mileage_km = mileage_km(&format!("{}{}{detail}", num.trim(), unit.trim()))
            }
            "修復歴" => details.repair_history = repair_history(&detail),
            "法定整備" | "整備" => details.maintenance = normalise(&detail),
            "車検有無" | "車検" => {
                details.inspection = normalise(&detail).map(|t| t.replace(' ', ""))
            }
            "保証" => details.warranty = normalise(&detail),
            "地域" => {
                let mut parts = detail.split('/').filter_map(normalise);
                details.prefecture = parts.next();
                details.city = parts.next();
            }
            _ => {}
        }
    }
    let root = document.root_element();
    let prices = Prices {
        total_yen: price(root, &TOTAL_MAIN, &TOTAL_SUB),
        body_yen: price(root, &BASE_MAIN, &BASE_SUB),
    };
    DetailPage {
        id,
        prices,
        details,
    }
}

/// Fields a healthy list page shows for (nearly) every listing. When most listings of a page lack one, the
/// layout has changed under the parser.
pub const EXPECTED_FIELDS: &[&str] = &["make", "model", "year", "prefecture", "detail_url"];

/// The expected fields that most listings of `page` lack (a page of at least 2 listings; more than half).
pub fn failing_fields(page: &ListPage) -> Vec<&'static str> {
    let count = page.listings.len();
    if count < 2 {
        return vec![];
    }
    let mut failing = Vec::new();
    for field in EXPECTED_FIELDS {
        let missing = page
            .listings
            .iter()
            .filter(|l| l.details.missing().contains(field))
            .count();
        if missing * 2 > count {
            failing.push(*field);
        }
    }
    let no_price = page
        .listings
        .iter()
        .filter(|l| l.prices.total_yen.is_none() && l.prices.body_yen.is_none())
        .count();
    if no_price * 2 > count {
        failing.push("price");
    }
    failing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_yen_is_exact() {
        assert_eq!(man_yen("323.9"), Some(3_239_000));
        assert_eq!(man_yen("312.2万円"), Some(3_122_000));
        assert_eq!(man_yen("1,234.56"), Some(12_345_600));
        assert_eq!(man_yen("９８"), Some(980_000));
        assert_eq!(man_yen("応談"), None);
        assert_eq!(man_yen(""), None);
        assert_eq!(man_yen("1.23456"), None);
    }

    #[test]
    fn years_come_in_western_and_era_forms() {
        assert_eq!(year("2023(R05)"), Some(2023));
        assert_eq!(year("H27"), Some(2015));
        assert_eq!(year("R05"), Some(2023));
        assert_eq!(year("(R05)"), Some(2023));
        assert_eq!(year("平成27年"), Some(2015));
        assert_eq!(year("令和元年"), Some(2019));
        assert_eq!(year("S63"), Some(1988));
        assert_eq!(year("不明"), None);
    }

    #[test]
    fn mileage_comes_in_km_and_man_km() {
        assert_eq!(mileage_km("2万km"), Some(20_000));
        assert_eq!(mileage_km("1.4万km"), Some(14_000));
        assert_eq!(mileage_km("2.0 万km"), Some(20_000));
        assert_eq!(mileage_km("8,500km"), Some(8_500));
        assert_eq!(mileage_km("9km"), Some(9));
        assert_eq!(mileage_km("不明"), None);
    }

    #[test]
    fn displacement_and_repair_history() {
        assert_eq!(displacement_cc("2000CC"), Some(2000));
        assert_eq!(displacement_cc("６６０ｃｃ"), Some(660));
        assert_eq!(displacement_cc("EV"), None);
        assert_eq!(repair_history("なし"), Some(false));
        assert_eq!(repair_history("あり"), Some(true));
        assert_eq!(repair_history("-"), None);
    }

    #[test]
    fn text_is_nfkc_normalised_and_collapsed() {
        assert_eq!(normalise(" 黒Ｍ\n\t ").as_deref(), Some("黒M"));
        assert_eq!(normalise("ＡＢＣ　１２３").as_deref(), Some("ABC 123"));
        assert_eq!(normalise("  "), None);
    }

    #[test]
    fn model_and_grade_split_on_no_break_spaces() {
        assert_eq!(
            model_and_grade("プリウス\u{a0}2.0 Z\u{a0}パノラマルーフ"),
            (Some("プリウス".into()), Some("2.0 Z".into()))
        );
        assert_eq!(
            model_and_grade("プリウス 2.0 Z"),
            (Some("プリウス".into()), None)
        );
    }

    #[test]
    fn garbage_is_read_as_nothing() {
        let url = Url::parse("https://www.carsensor.net/usedcar/index.html").unwrap();
        let page = list_page("\u{0}<<<not html at all>>>\u{fffd}", &url);
        assert!(page.listings.is_empty());
        assert!(!page.has_listing_markup);
        assert!(!page.is_html);
        let page = list_page(&"\u{0}\u{1}<<>>garbage<html<<body".repeat(50), &url);
        assert!(!page.is_html);
        let detail = detail_page("<html><p>nothing", &url);
        assert_eq!(detail.details.make, None);
    }

    #[test]
    fn a_results_page_without_results_is_html_without_listing_markup() {
        let url = Url::parse("https://www.carsensor.net/usedcar/index.html").unwrap();
        let page = list_page(
            "<!doctype html><html><head><title>中古車一覧</title></head><body><div class=\"resultBar\"><p>該当する物件がありません</p></div></body></html>",
            &url,
        );
        assert!(page.listings.is_empty());
        assert!(!page.has_listing_markup);
        assert!(page.is_html);
    }
}
