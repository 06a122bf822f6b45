//! Grades an answer to a question without an LLM: what key points it covers, and how close it reads to the
//! reference answer. Pure and deterministic; the grade is computed once, when the answer is given, and recorded.
//!
//! How it scores (every number is in [`THRESHOLDS`]):
//! 1. Text is normalised: NFKC, lowercase, `ё` → `е`, `can't`/`cannot` → `can not`, `won't` → `will not`,
//!    `n't` → ` not`, and split into words of letters and digits. Punctuation that ends a clause (`.,;:!?`,
//!    dashes, brackets) is remembered: a negation never reaches across it.
//! 2. Words are stemmed with Snowball: Cyrillic words with the Russian stemmer, the rest with the English one.
//! 3. A key point is covered when its concept or one of its synonyms appears in the answer: its stemmed words
//!    in order, with at most `max_gap` other words between them. Words match when their stems are equal or,
//!    when the key point's word has at least `typo_min_len` letters, differ by one edit (two from
//!    `typo_two_edits_len`), unless one is the other with a prefix (`synchronous`/`asynchronous`).
//! 4. A match with a negation (`not`, `no`, `never`, `without`, `none`, `не`, `нет`, `без`, `никогда`,
//!    `нельзя`, ...) among the `negation_window` words before it in the same clause, or between its words, does
//!    not count: the answer denies the key point. It is reported as negated. (A key point that is itself
//!    negative, `never rebase shared commits`, matches as a whole, its negation included.)
//! 5. `coverage` = covered key points / all key points; `similarity` = Dice coefficient of the character
//!    trigrams of the stemmed answer and the stemmed reference answer.
//! 6. `score` = `coverage_weight` × coverage + `similarity_weight` × similarity, rounded to two decimals;
//!    `correct` from `correct`, `partial` from `partial`, else `incorrect`. An answer that negates any key point
//!    is never `correct`.

use std::collections::HashSet;

use domain::trainer::{Grade, KeyPoint, Verdict};
use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;

/// The checker's numbers, in one place.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Score from which an answer is correct.
    pub correct: f64,
    /// Score from which an answer is partial.
    pub partial: f64,
    pub coverage_weight: f64,
    pub similarity_weight: f64,
    /// Words this long may have one typo.
    pub typo_min_len: usize,
    /// Words this long may have two.
    pub typo_two_edits_len: usize,
    /// Other words allowed between the words of a key point.
    pub max_gap: usize,
    /// How many words before a key point a negation cancels it.
    pub negation_window: usize,
}

pub const THRESHOLDS: Thresholds = Thresholds {
    correct: 0.7,
    partial: 0.35,
    coverage_weight: 0.8,
    similarity_weight: 0.2,
    typo_min_len: 5,
    typo_two_edits_len: 9,
    max_gap: 2,
    negation_window: 3,
};

const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "without",
    "neither",
    "nor",
    "none",
    "nothing",
    "нет",
    "не",
    "без",
    "никогда",
    "ни",
    "нельзя",
    "ничего",
];

/// A normalised word, and the clause of the text it is in.
struct Word {
    text: String,
    stem: String,
    clause: usize,
}

/// Grades `answer` against the question's reference answer and key points.
pub fn grade(answer: &str, reference: &str, key_points: &[KeyPoint]) -> Grade {
    let t = THRESHOLDS;
    let answer_words = words(answer);
    let mut matched = Vec::new();
    let mut missing = Vec::new();
    let mut negated = Vec::new();
    for point in key_points {
        let variants = std::iter::once(&point.concept).chain(&point.synonyms);
        let mut found = Found::No;
        for variant in variants {
            let phrase = words(variant);
            match find(&answer_words, &phrase) {
                Found::Yes => {
                    found = Found::Yes;
                    break;
                }
                Found::Negated => found = Found::Negated,
                Found::No => {}
            }
        }
        match found {
            Found::Yes => matched.push(point.concept.clone()),
            Found::Negated => {
                negated.push(point.concept.clone());
                missing.push(point.concept.clone());
            }
            Found::No => missing.push(point.concept.clone()),
        }
    }
    let coverage = if key_points.is_empty() {
        0.0
    } else {
        matched.len() as f64 / key_points.len() as f64
    };
    let similarity = dice(&trigrams(&answer_words), &trigrams(&words(reference)));
    let score =
        ((t.coverage_weight * coverage + t.similarity_weight * similarity) * 100.0).round() / 100.0;
    let verdict = if score >= t.correct && negated.is_empty() {
        Verdict::Correct
    } else if score >= t.partial {
        Verdict::Partial
    } else {
        Verdict::Incorrect
    };
    Grade {
        verdict,
        score,
        matched,
        missing,
        negated,
    }
}

enum Found {
    Yes,
    Negated,
    No,
}

/// Whether `phrase` occurs in the answer (stems, in order, small gaps), and whether every occurrence is negated.
fn find(answer: &[Word], phrase: &[Word]) -> Found {
    let t = THRESHOLDS;
    let Some(first) = phrase.first() else {
        return Found::No;
    };
    let mut negated = false;
    for start in 0..answer.len() {
        if !same(&answer[start], first) {
            continue;
        }
        let mut end = start;
        let mut whole = true;
        for part in &phrase[1..] {
            let next =
                (end + 1..answer.len().min(end + 2 + t.max_gap)).find(|&i| same(&answer[i], part));
            match next {
                Some(i) => end = i,
                None => {
                    whole = false;
                    break;
                }
            }
        }
        if !whole {
            continue;
        }
        let clause = answer[start].clause;
        let before = (start.saturating_sub(t.negation_window)..start)
            .filter(|&i| answer[i].clause == clause);
        // words of the answer between the phrase's words (the phrase's own negations are part of it)
        let between = (start..=end).filter(|&i| !phrase.iter().any(|p| p.text == answer[i].text));
        if before
            .chain(between)
            .any(|i| NEGATIONS.contains(&answer[i].text.as_str()))
        {
            negated = true;
            continue;
        }
        return Found::Yes;
    }
    if negated { Found::Negated } else { Found::No }
}

/// Equal stems, or close enough to be a typo of the key point's word `expected` (how many edits depends on
/// that word's length, not its stem's: Russian stems are short).
fn same(found: &Word, expected: &Word) -> bool {
    let (found_stem, expected_stem) = (found.stem.as_str(), expected.stem.as_str());
    if found_stem == expected_stem {
        return true;
    }
    let t = THRESHOLDS;
    let length = expected.text.chars().count();
    let allowed = if length >= t.typo_two_edits_len {
        2
    } else if length >= t.typo_min_len {
        1
    } else {
        0
    };
    // a word with a prefix added or removed is another word (asynchronous, unsafe), not a typo
    let prefixed = found_stem.ends_with(expected_stem) || expected_stem.ends_with(found_stem);
    allowed > 0 && !prefixed && strsim::damerau_levenshtein(found_stem, expected_stem) <= allowed
}

/// Normalised words of a text, stemmed, with their clause.
fn words(text: &str) -> Vec<Word> {
    let normal: String = text
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .replace('ё', "е")
        .replace('’', "'")
        .replace("can't", "can not")
        .replace("cannot", "can not")
        .replace("won't", "will not")
        .replace("n't", " not");
    let mut words = Vec::new();
    let mut clause = 0;
    let mut current = String::new();
    for c in normal.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            let text = std::mem::take(&mut current);
            words.push(Word {
                stem: stem(&text),
                text,
                clause,
            });
        }
        if matches!(
            c,
            '.' | ',' | ';' | ':' | '!' | '?' | '—' | '–' | '(' | ')' | '\n'
        ) {
            clause += 1;
        }
    }
    words
}

fn stem(word: &str) -> String {
    let cyrillic = word.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
    let algorithm = if cyrillic {
        Algorithm::Russian
    } else {
        Algorithm::English
    };
    Stemmer::create(algorithm).stem(word).into_owned()
}

/// Character trigrams of the stemmed words.
fn trigrams(words: &[Word]) -> HashSet<[char; 3]> {
    let stems: Vec<&str> = words.iter().map(|w| w.stem.as_str()).collect();
    let padded: Vec<char> = format!("  {} ", stems.join(" ")).chars().collect();
    padded.windows(3).map(|w| [w[0], w[1], w[2]]).collect()
}

fn dice(a: &HashSet<[char; 3]>, b: &HashSet<[char; 3]>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    2.0 * a.intersection(b).count() as f64 / (a.len() + b.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn words_are_normalised_and_stemmed_per_script() {
        assert_eq!(texts("Isn't ＡＢＣ, ёлка!"), ["is", "not", "abc", "елка"]);
        assert_eq!(texts("I can't; won't"), ["i", "can", "not", "will", "not"]);
        let clauses: Vec<usize> = words("No GC. Single owner")
            .iter()
            .map(|w| w.clause)
            .collect();
        assert_eq!(clauses, [0, 0, 1, 1]);
        assert_eq!(stem("borrowing"), stem("borrowed"));
        assert_eq!(stem("владение"), stem("владения"));
    }

    #[test]
    fn typos_are_tolerated_in_longer_key_point_words_but_prefixes_make_other_words() {
        let same_words = |found: &str, expected: &str| same(&words(found)[0], &words(expected)[0]);
        assert!(same_words("ownrship", "ownership"));
        assert!(same_words("ownr", "owner"));
        assert!(same_words("месо", "место"));
        assert!(!same_words("help", "heap"));
        assert!(!same_words("asynchronous", "synchronous"));
    }
}
