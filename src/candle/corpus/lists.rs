//! The corpus's word lists (`data/candle/corpus/*.txt`, one `weight<TAB>value` a line) and the
//! seeded random source that draws from them.
//!
//! Invariants: a list's draw depends only on the generator's state, so a seed replays the same
//! corpus on every machine; weights are positive integers (a list is never empty).

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and enough for a test corpus.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0); the modulo bias is negligible for the small n used here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A list of values with integer weights, drawn in proportion to them.
#[derive(Debug)]
pub struct Weighted<T> {
    values: Vec<T>,
    cumulative: Vec<u64>,
}

impl<T> Weighted<T> {
    /// A list from (weight, value) pairs; panics if empty or a weight is zero (a data defect).
    pub fn new(pairs: impl IntoIterator<Item = (u64, T)>) -> Self {
        let mut values = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for (w, v) in pairs {
            assert!(w > 0, "weights are positive");
            total += w;
            cumulative.push(total);
            values.push(v);
        }
        assert!(!values.is_empty(), "a weighted list is not empty");
        Self { values, cumulative }
    }

    /// One value, drawn by weight.
    pub fn draw(&self, rng: &mut SplitMix64) -> &T {
        let total = *self.cumulative.last().expect("not empty");
        let x = rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= x);
        &self.values[i]
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Never true (lists are not empty); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Parses a `weight<TAB>value` list.
pub fn parse(text: &'static str) -> Weighted<&'static str> {
    Weighted::new(text.lines().filter(|l| !l.is_empty()).map(|l| {
        let (w, v) = l.split_once('\t').expect("weight<TAB>value");
        (w.parse().expect("weight"), v)
    }))
}

macro_rules! list {
    ($file:literal) => {
        include_str!(concat!("../../../data/candle/corpus/", $file))
    };
}

/// Every word list of the corpus, parsed.
#[derive(Debug)]
pub struct Lists {
    /// Female first names.
    pub female: Weighted<&'static str>,
    /// Male first names.
    pub male: Weighted<&'static str>,
    /// Second given names of compound female names ("Maria Eduarda").
    pub female_second: Weighted<&'static str>,
    /// Second given names of compound male names ("João Pedro").
    pub male_second: Weighted<&'static str>,
    /// Surnames.
    pub surnames: Weighted<&'static str>,
    /// E-mail domains.
    pub providers: Weighted<&'static str>,
    /// Street types (Rua, Avenida...).
    pub street_types: Weighted<&'static str>,
    /// Street names.
    pub streets: Weighted<&'static str>,
    /// Neighbourhoods.
    pub neighbourhoods: Weighted<&'static str>,
    /// Templates of short intentions (`{key}` is filled from [`Lists::fill`]).
    pub prayer_short: Weighted<&'static str>,
    /// Templates of the sentences long intentions are made of.
    pub prayer_sentences: Weighted<&'static str>,
    /// The words a template's `{key}` is filled with, by key (`{nome}` is a first name).
    pub fill: Vec<(&'static str, Weighted<&'static str>)>,
}

impl Lists {
    /// Parses the lists compiled into the binary.
    pub fn load() -> Self {
        Self {
            female: parse(list!("first_names_female.txt")),
            male: parse(list!("first_names_male.txt")),
            female_second: parse(list!("second_names_female.txt")),
            male_second: parse(list!("second_names_male.txt")),
            surnames: parse(list!("surnames.txt")),
            providers: parse(list!("email_providers.txt")),
            street_types: parse(list!("street_types.txt")),
            streets: parse(list!("street_names.txt")),
            neighbourhoods: parse(list!("neighbourhoods.txt")),
            prayer_short: parse(list!("prayer_short.txt")),
            prayer_sentences: parse(list!("prayer_sentences.txt")),
            fill: list!("prayer_fill.txt")
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (key, words) = l.split_once('\t').expect("key<TAB>a|b|c");
                    (key, Weighted::new(words.split('|').map(|w| (1, w))))
                })
                .collect(),
        }
    }

    /// A template with each `{key}` replaced by a word drawn for it, appended to `out`.
    pub fn expand(&self, template: &str, rng: &mut SplitMix64, out: &mut String) {
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = open + rest[open..].find('}').expect("a closed {key}");
            let key = &rest[open + 1..close];
            let word = if key == "nome" {
                if rng.percent(55) {
                    self.female.draw(rng)
                } else {
                    self.male.draw(rng)
                }
            } else {
                let (_, words) = self.fill.iter().find(|(k, _)| *k == key).expect("a known key");
                words.draw(rng)
            };
            out.push_str(word);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
    }
}
