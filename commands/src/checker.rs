//! Grades an answer to a question without an LLM: what key points it covers, and how close it reads to the
//! reference answer. Pure and deterministic; the grade is computed once, when the answer is given, and recorded.
//!
//! How it scores (every number is in [`THRESHOLDS`]):
//! 1. Text is normalised: NFKC, lowercase, `ё` → `е`, `n't` → ` not`, split into words of letters and digits.
//! 2. Words are stemmed with Snowball: Cyrillic words with the Russian stemmer, the rest with the English one.
//! 3. A key point is covered when its concept or one of its synonyms appears in the answer: its stemmed words
//!    in order, with at most `max_gap` other words between them. Words match when their stems are equal or,
//!    for words of at least `typo_min_len` letters, differ by one edit (two from `typo_two_edits_len`).
//! 4. A match preceded within `negation_window` words by a negation (`not`, `no`, `never`, `without`, `не`,
//!    `нет`, `без`, `никогда`, ...) does not count: the answer denies the key point. It is reported as negated.
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
    "нет",
    "не",
    "без",
    "никогда",
    "ни",
];

/// Grades `answer` against the question's reference answer and key points.
pub fn grade(answer: &str, reference: &str, key_points: &[KeyPoint]) -> Grade {
    let t = THRESHOLDS;
    let answer_words = words(answer);
    let stems: Vec<String> = answer_words.iter().map(|w| stem(w)).collect();
    let mut matched = Vec::new();
    let mut missing = Vec::new();
    let mut negated = Vec::new();
    for point in key_points {
        let variants = std::iter::once(&point.concept).chain(&point.synonyms);
        let mut found = Found::No;
        for variant in variants {
            let phrase: Vec<String> = words(variant).iter().map(|w| stem(w)).collect();
            match find(&stems, &answer_words, &phrase) {
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
    let reference_stems: Vec<String> = words(reference).iter().map(|w| stem(w)).collect();
    let similarity = dice(
        &trigrams(&stems.join(" ")),
        &trigrams(&reference_stems.join(" ")),
    );
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
fn find(stems: &[String], words: &[String], phrase: &[String]) -> Found {
    let t = THRESHOLDS;
    let Some(first) = phrase.first() else {
        return Found::No;
    };
    let mut negated = false;
    for start in 0..stems.len() {
        if !same(&stems[start], first) {
            continue;
        }
        let mut at = start;
        let mut whole = true;
        for part in &phrase[1..] {
            let next =
                (at + 1..stems.len().min(at + 2 + t.max_gap)).find(|&i| same(&stems[i], part));
            match next {
                Some(i) => at = i,
                None => {
                    whole = false;
                    break;
                }
            }
        }
        if !whole {
            continue;
        }
        let window = start.saturating_sub(t.negation_window)..start;
        if words[window]
            .iter()
            .any(|w| NEGATIONS.contains(&w.as_str()))
        {
            negated = true;
            continue;
        }
        return Found::Yes;
    }
    if negated { Found::Negated } else { Found::No }
}

/// Equal stems, or close enough to be a typo.
fn same(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let t = THRESHOLDS;
    let shorter = a.chars().count().min(b.chars().count());
    let allowed = if shorter >= t.typo_two_edits_len {
        2
    } else if shorter >= t.typo_min_len {
        1
    } else {
        0
    };
    allowed > 0 && strsim::damerau_levenshtein(a, b) <= allowed
}

/// Normalised words of a text.
fn words(text: &str) -> Vec<String> {
    let normal: String = text
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .replace('ё', "е")
        .replace("n't", " not")
        .replace("n’t", " not");
    normal
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
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

fn trigrams(text: &str) -> HashSet<[char; 3]> {
    let padded: Vec<char> = format!("  {text} ").chars().collect();
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

    #[test]
    fn words_are_normalised_and_stemmed_per_script() {
        assert_eq!(words("Isn't ＡＢＣ, ёлка!"), ["is", "not", "abc", "елка"]);
        assert_eq!(stem("borrowing"), stem("borrowed"));
        assert_eq!(stem("владение"), stem("владения"));
    }

    #[test]
    fn typos_are_tolerated_only_in_longer_words() {
        assert!(same("ownership", "ownrship"));
        assert!(!same("heap", "help"));
    }
}
