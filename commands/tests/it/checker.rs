//! The answer checker on a table of real answers: good, partial, wrong, negated, typo'd, in English and Russian.

use commands::checker::grade;
use domain::trainer::{KeyPoint, Verdict};

fn point(concept: &str, synonyms: &[&str]) -> KeyPoint {
    KeyPoint {
        concept: concept.into(),
        synonyms: synonyms.iter().map(|s| (*s).to_owned()).collect(),
    }
}

struct Case {
    what: &'static str,
    answer: &'static str,
    verdict: Verdict,
    /// The key points (concepts) the answer covers.
    matched: &'static [&'static str],
}

fn check(reference: &str, key_points: &[KeyPoint], cases: &[Case]) {
    for case in cases {
        let grade = grade(case.answer, reference, key_points);
        assert_eq!(
            (grade.verdict, grade.matched.as_slice()),
            (
                case.verdict,
                case.matched
                    .iter()
                    .map(|m| (*m).to_owned())
                    .collect::<Vec<_>>()
                    .as_slice()
            ),
            "{}: {:?} graded {grade:?}",
            case.what,
            case.answer
        );
    }
}

#[test]
fn english_answers_about_ownership() {
    let reference = "Every value in Rust has a single owner. When the owner goes out of scope the value is dropped. \
                     Values can be borrowed through references without taking ownership, and assignment moves \
                     ownership unless the type is Copy.";
    let key_points = [
        point("single owner", &["one owner", "exactly one owner"]),
        point(
            "dropped when out of scope",
            &["freed at end of scope", "drop at scope end", "out of scope"],
        ),
        point("borrowing", &["reference", "borrow"]),
        point("move", &["moved", "transfer ownership"]),
    ];
    check(
        reference,
        &key_points,
        &[
            Case {
                what: "good",
                answer: "Each value has exactly one owner; when that owner goes out of scope it is dropped. You can \
                         borrow it by reference, and assigning it moves ownership to the new variable.",
                verdict: Verdict::Correct,
                matched: &[
                    "single owner",
                    "dropped when out of scope",
                    "borrowing",
                    "move",
                ],
            },
            Case {
                what: "typos",
                answer: "Every value has one ownr and is droped when it goes out of scpoe. Refrences let you \
                         borow, assignment moves it.",
                verdict: Verdict::Correct,
                matched: &[
                    "single owner",
                    "dropped when out of scope",
                    "borrowing",
                    "move",
                ],
            },
            Case {
                what: "partial",
                answer: "A value has one owner and gets freed at end of scope.",
                verdict: Verdict::Partial,
                matched: &["single owner", "dropped when out of scope"],
            },
            Case {
                what: "wrong",
                answer: "Rust uses a garbage collector that counts references at runtime.",
                verdict: Verdict::Incorrect,
                // it does mention references
                matched: &["borrowing"],
            },
            Case {
                what: "negated",
                answer: "A value does not have a single owner, it is not dropped out of scope, you cannot borrow \
                         and values never move.",
                verdict: Verdict::Incorrect,
                matched: &[],
            },
            Case {
                what: "empty-ish",
                answer: "I don't know.",
                verdict: Verdict::Incorrect,
                matched: &[],
            },
        ],
    );
}

#[test]
fn russian_answers_about_indexes() {
    let reference = "Индекс — это отдельная структура данных, обычно B-дерево, которая ускоряет поиск строк по \
                     значению столбца. Индексы ускоряют чтение, но замедляют вставку и обновление и занимают место.";
    let key_points = [
        point(
            "ускоряет поиск",
            &["быстрый поиск", "ускоряет чтение", "ускоряет выборку"],
        ),
        point("b-дерево", &["b-tree", "дерево"]),
        point(
            "замедляет запись",
            &[
                "замедляет вставку",
                "медленнее вставка",
                "замедляет обновление",
            ],
        ),
        point(
            "занимает место",
            &["дополнительная память", "место на диске"],
        ),
    ];
    check(
        reference,
        &key_points,
        &[
            Case {
                what: "good",
                answer: "Индекс — структура вроде B-дерева, она ускоряет поиск по столбцу, но замедляет вставку \
                         и занимает место на диске.",
                verdict: Verdict::Correct,
                matched: &[
                    "ускоряет поиск",
                    "b-дерево",
                    "замедляет запись",
                    "занимает место",
                ],
            },
            Case {
                what: "typos and other word forms",
                answer: "Индексы ускоряют поиск строк, хранятся как b-деревья, замедляют вставки и занимают \
                         месо.",
                verdict: Verdict::Correct,
                matched: &[
                    "ускоряет поиск",
                    "b-дерево",
                    "замедляет запись",
                    "занимает место",
                ],
            },
            Case {
                what: "partial",
                answer: "Индекс ускоряет поиск, но занимает место.",
                verdict: Verdict::Partial,
                matched: &["ускоряет поиск", "занимает место"],
            },
            Case {
                what: "negated",
                answer: "Индекс не ускоряет поиск, не дерево, не замедляет запись и не занимает место.",
                verdict: Verdict::Incorrect,
                matched: &[],
            },
            Case {
                what: "wrong",
                answer: "Это первичный ключ таблицы.",
                verdict: Verdict::Incorrect,
                matched: &[],
            },
        ],
    );
}

#[test]
fn negating_one_key_point_keeps_a_good_answer_from_being_correct() {
    let reference = "HTTP is stateless: each request carries everything the server needs; state lives in cookies \
                     or tokens.";
    let key_points = [
        point("stateless", &["no state"]),
        point("cookies", &["tokens", "cookie"]),
    ];
    let negated = grade(
        "HTTP is not stateless, servers remember you; cookies exist.",
        reference,
        &key_points,
    );
    assert_ne!(negated.verdict, Verdict::Correct, "{negated:?}");
    assert_eq!(negated.negated, ["stateless"]);
    let good = grade(
        "HTTP is stateless; the state is kept in cookies or tokens.",
        reference,
        &key_points,
    );
    assert_eq!(good.verdict, Verdict::Correct, "{good:?}");
    assert_eq!(good.matched, ["stateless", "cookies"]);
    assert!(good.missing.is_empty());
}

#[test]
fn negations_inside_a_key_point_count_and_do_not_reach_across_sentences() {
    let key_points = [
        point("ускоряет поиск", &[]),
        point("single owner", &[]),
        point("certificate authority", &["ca"]),
    ];
    let inside = grade("Индекс ускоряет не поиск, а вставку.", "", &key_points);
    assert_eq!(inside.negated, ["ускоряет поиск"], "{inside:?}");
    let next_sentence = grade("No GC. Single owner per value.", "", &key_points);
    assert_eq!(next_sentence.matched, ["single owner"], "{next_sentence:?}");
    let contraction = grade("I can't remember the rest.", "", &key_points);
    assert!(contraction.matched.is_empty(), "{contraction:?}");
}
