//! A seeded generator of realistic candles (`Corpus::new(seed)`), for training the text models,
//! the figures and the tests: Brazilian names with a frequency skew (compound given names, several
//! surnames, "de"/"da"), e-mail addresses made from the name, streets, house numbers and
//! neighbourhoods, cities weighted by their population (IBGE Censo 2022, `data/candle/population.csv`)
//! with their state and a real area code of that state, birth dates, and prayer intentions of realistic length (most
//! under 40 characters, a long tail up to 800). About 3% are lit from abroad.
//!
//! Invariants: the same seed yields the same candles on every machine (no clock, no hash-map
//! order); every candle it yields passes `Candle::validate` for any today on or after
//! [`CORPUS_TODAY`].

mod lists;

pub use lists::{SplitMix64, Weighted};

use lists::Lists;

use super::fields::{Candle, Date, PRAYER_CHARS_MAX};
use super::tables::{tables, BRAZIL_NUMERIC};

/// The date the corpus's birth dates are counted back from.
pub const CORPUS_TODAY: Date = Date { year: 2026, month: 1, day: 1 };
/// The resident population of each municipality, IBGE Censo Demográfico 2022 (SIDRA table
/// 9514), one `ibge_code,population` row per row of `municipalities.csv`, in its order
/// (provenance in `data/candle/README.md`). Only the corpus reads it.
const POPULATION_CSV: &str = include_str!("../../../data/candle/population.csv");
/// Percent of candles lit from abroad.
pub const ABROAD_PERCENT: u64 = 3;

/// Countries candles from abroad come from (ISO numeric), weighted by a rough guess of the
/// diaspora's size (a documented rule, not a measurement).
const ABROAD: [(u64, u16); 12] = [
    (30, 840), // United States
    (20, 620), // Portugal
    (10, 392), // Japan
    (8, 380),  // Italy
    (8, 826),  // United Kingdom
    (6, 724),  // Spain
    (5, 276),  // Germany
    (4, 250),  // France
    (4, 124),  // Canada
    (3, 600),  // Paraguay
    (3, 32),   // Argentina
    (2, 36),   // Australia
];

/// The generator.
#[derive(Debug)]
pub struct Corpus {
    rng: SplitMix64,
    lists: Lists,
    cities: Weighted<u16>,
    abroad: Weighted<u16>,
}

/// Each municipality's population, by dense index; panics on a row that does not match the
/// municipality table (a data defect, caught by the tests).
pub fn population() -> Vec<u64> {
    let cities = &tables().cities;
    let mut lines = POPULATION_CSV.lines();
    assert_eq!(lines.next(), Some("ibge_code,population"), "population.csv's header");
    let population: Vec<u64> = lines
        .zip(cities)
        .map(|(line, city)| {
            let (code, people) = line.split_once(',').expect("two columns");
            assert_eq!(
                code.parse::<u32>().ok(),
                Some(city.ibge_code),
                "population.csv follows municipalities.csv"
            );
            people.parse().expect("a population is a number")
        })
        .collect();
    assert_eq!(population.len(), cities.len(), "a population for every municipality");
    population
}

impl Corpus {
    /// A generator; equal seeds yield equal sequences.
    pub fn new(seed: u64) -> Self {
        let cities = Weighted::new(population().into_iter().zip(0u16..));
        Self { rng: SplitMix64::new(seed), lists: Lists::load(), cities, abroad: Weighted::new(ABROAD) }
    }

    /// The next candle.
    pub fn candle(&mut self) -> Candle {
        let female = self.rng.percent(55);
        let (name, email) = self.name_and_email(female);
        let birth_date = self.birth_date();
        let abroad = self.rng.percent(ABROAD_PERCENT);
        let (city, state, country, phone) = if abroad {
            (None, None, *self.abroad.draw(&mut self.rng), None)
        } else {
            let c = *self.cities.draw(&mut self.rng);
            let t = tables();
            let s = t.cities[usize::from(c)].state;
            let phone = self.rng.percent(85).then(|| self.phone(c, s));
            let uf = t.states[usize::from(s)].uf.to_owned();
            (Some(t.cities[usize::from(c)].ibge_code), Some(uf), BRAZIL_NUMERIC, phone)
        };
        let has_whatsapp = phone.is_some() && self.rng.percent(90);
        let address = if self.rng.percent(93) { self.address() } else { String::new() };
        let neighbourhood = if !abroad && self.rng.percent(90) {
            (*self.lists.neighbourhoods.draw(&mut self.rng)).to_owned()
        } else {
            String::new()
        };
        let prayer = self.prayer();
        Candle {
            name,
            email,
            birth_date,
            phone,
            has_whatsapp,
            address,
            neighbourhood,
            city,
            state,
            country,
            prayer,
        }
    }

    fn name_and_email(&mut self, female: bool) -> (String, String) {
        let l = &self.lists;
        let rng = &mut self.rng;
        let (first, second) = if female { (&l.female, &l.female_second) } else { (&l.male, &l.male_second) };
        let mut name = (*first.draw(rng)).to_owned();
        if rng.percent(25) {
            name.push(' ');
            name.push_str(second.draw(rng));
        }
        let surnames = match rng.below(100) {
            0..=19 => 1,
            20..=79 => 2,
            80..=96 => 3,
            _ => 4,
        };
        let mut last = "";
        for i in 0..surnames {
            if i > 0 && rng.percent(12) {
                name.push_str([" de", " da", " dos", " do"][rng.below(4) as usize]);
            }
            last = l.surnames.draw(rng);
            name.push(' ');
            name.push_str(last);
        }
        let email = if rng.percent(90) { self.email(&name, last) } else { String::new() };
        (name, email)
    }

    fn email(&mut self, name: &str, last: &str) -> String {
        let first = fold(name.split(' ').next().unwrap_or("x"));
        let last = fold(last);
        let rng = &mut self.rng;
        let mut local = match rng.below(6) {
            0 => format!("{first}.{last}"),
            1 => format!("{first}{last}"),
            2 => format!("{first}_{last}"),
            3 => format!("{}{last}", &first[..1]),
            4 => first.clone(),
            _ => format!("{first}.{last}{}", rng.below(100)),
        };
        if rng.percent(30) {
            local.push_str(&(1950 + rng.below(60)).to_string());
        }
        format!("{local}@{}", self.lists.providers.draw(&mut self.rng))
    }

    fn birth_date(&mut self) -> Date {
        // Ages 16..=95, the sum of two uniform draws: most between 30 and 65.
        let age = 16 + self.rng.below(41) + self.rng.below(40);
        let days = CORPUS_TODAY.unix_days() - (age as i64) * 365 - self.rng.below(365) as i64;
        Date::from_unix_days(days)
    }

    fn phone(&mut self, city: u16, state: u8) -> u64 {
        let s = &tables().states[usize::from(state)];
        let ddd =
            if s.capital == city { s.ddds[0] } else { s.ddds[self.rng.below(s.ddds.len() as u64) as usize] };
        u64::from(ddd) * 1_000_000_000 + 900_000_000 + self.rng.below(100_000_000)
    }

    fn address(&mut self) -> String {
        let l = &self.lists;
        let rng = &mut self.rng;
        let mut a = format!("{} {}", l.street_types.draw(rng), l.streets.draw(rng));
        if rng.percent(4) {
            a.push_str(", s/n");
        } else {
            // House numbers: log-uniform-ish, most under 1,000.
            let digits = 1 + rng.below(4) as u32;
            let n = 1 + rng.below(10u64.pow(digits));
            a.push_str(&format!(", {n}"));
        }
        match rng.below(100) {
            0..=11 => {
                let apto = 11 + rng.below(1_200);
                a.push_str(&format!(", apto {apto}"));
            }
            12..=15 => {
                let casa = 1 + rng.below(5);
                a.push_str(&format!(", casa {casa}"));
            }
            16..=18 => {
                let bloco = (b'A' + rng.below(6) as u8) as char;
                a.push_str(&format!(", bloco {bloco}"));
            }
            _ => {}
        }
        a
    }

    fn prayer(&mut self) -> String {
        let mut p = String::new();
        let sentences = match self.rng.below(100) {
            0..=7 => return p,
            8..=69 => {
                let t = self.lists.prayer_short.draw(&mut self.rng);
                self.lists.expand(t, &mut self.rng, &mut p);
                return p;
            }
            70..=91 => 1 + self.rng.below(3),
            92..=97 => 4 + self.rng.below(5),
            _ => 9 + self.rng.below(20),
        };
        let mut sentence = String::new();
        for _ in 0..sentences {
            sentence.clear();
            let t = self.lists.prayer_sentences.draw(&mut self.rng);
            self.lists.expand(t, &mut self.rng, &mut sentence);
            if p.chars().count() + 1 + sentence.chars().count() > PRAYER_CHARS_MAX {
                break;
            }
            if !p.is_empty() {
                p.push(' ');
            }
            p.push_str(&sentence);
        }
        p
    }
}

impl Iterator for Corpus {
    type Item = Candle;

    fn next(&mut self) -> Option<Candle> {
        Some(self.candle())
    }
}

/// The seed's long record ("Maria Eduarda Gonçalves de Albuquerque Cavalcanti" on "Rua
/// Desembargador Antônio Carlos Figueiredo Jobim") with an 800-character prayer in Portuguese.
pub fn long_record() -> Candle {
    // Distinct sentences from the corpus's templates (a fixed seed), cut at 800 characters.
    let mut corpus = Corpus::new(800);
    let mut prayer = String::new();
    while prayer.chars().count() < PRAYER_CHARS_MAX {
        let t = corpus.lists.prayer_sentences.draw(&mut corpus.rng);
        corpus.lists.expand(t, &mut corpus.rng, &mut prayer);
        prayer.push(' ');
    }
    let prayer: String = prayer.chars().take(PRAYER_CHARS_MAX).collect();
    Candle {
        name: "Maria Eduarda Gonçalves de Albuquerque Cavalcanti".into(),
        email: "mariaeduarda.cavalcanti@yahoo.com.br".into(),
        birth_date: Date { year: 1962, month: 11, day: 30 },
        phone: Some(81_998_765_432),
        has_whatsapp: true,
        address: "Rua Desembargador Antônio Carlos Figueiredo Jobim, 1450, apto 302".into(),
        neighbourhood: "Boa Viagem".into(),
        city: Some(2_611_606),
        state: Some("PE".into()),
        country: 76,
        prayer,
    }
}

/// Lower-case ASCII of a name, accents dropped, for e-mail local parts.
fn fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let c = match c {
                'á' | 'à' | 'â' | 'ã' | 'Á' | 'Â' | 'Ã' => 'a',
                'é' | 'ê' | 'É' | 'Ê' => 'e',
                'í' | 'Í' => 'i',
                'ó' | 'ô' | 'õ' | 'Ó' | 'Ô' => 'o',
                'ú' | 'ü' | 'Ú' => 'u',
                'ç' | 'Ç' => 'c',
                c => c,
            };
            c.is_ascii_alphanumeric().then(|| c.to_ascii_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_yields_the_same_candles() {
        let a: Vec<Candle> = Corpus::new(7).take(200).collect();
        let b: Vec<Candle> = Corpus::new(7).take(200).collect();
        assert_eq!(a, b);
        let c: Vec<Candle> = Corpus::new(8).take(200).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn every_generated_candle_is_valid_and_the_shape_is_realistic() {
        let n = 20_000;
        let (mut abroad, mut short_prayers, mut long_prayers, mut compound) = (0, 0, 0, 0);
        let mut longest = 0;
        for c in Corpus::new(1).take(n) {
            c.validate(CORPUS_TODAY).unwrap_or_else(|e| panic!("{e}: {c:?}"));
            abroad += usize::from(c.country != BRAZIL_NUMERIC);
            let chars = c.prayer.chars().count();
            short_prayers += usize::from(chars <= 40);
            long_prayers += usize::from(chars > 300);
            longest = longest.max(chars);
            compound += usize::from(c.name.starts_with("Maria ") || c.name.starts_with("João "));
        }
        assert!((n / 100..n / 20).contains(&abroad), "about 3% abroad: {abroad}");
        assert!(short_prayers * 100 / n >= 65, "most prayers are short: {short_prayers}");
        assert!(long_prayers > 0, "a long tail");
        assert!(longest <= PRAYER_CHARS_MAX);
        assert!(compound > n / 20, "the skew puts Maria and João on top: {compound}");
    }

    #[test]
    fn cities_are_drawn_by_their_census_population() {
        let population = population();
        assert_eq!(population.iter().sum::<u64>(), 203_080_756, "IBGE Censo 2022's total for Brazil");
        let sao_paulo = tables().city_index(3_550_308).expect("São Paulo");
        assert_eq!(population[usize::from(sao_paulo)], 11_451_999);
        let (mut brazilian, mut in_sao_paulo, mut in_small) = (0u64, 0u64, 0u64);
        for c in Corpus::new(3).take(40_000).filter(|c| c.country == BRAZIL_NUMERIC) {
            let city = tables().city_index(c.city.expect("a Brazilian candle has a city")).expect("known");
            brazilian += 1;
            in_sao_paulo += u64::from(city == sao_paulo);
            in_small += u64::from(population[usize::from(city)] < 5_000);
        }
        // São Paulo: 5.64% of the people. Municipalities under 5,000: 1,324 of them, 2.19% of them.
        let share = |n: u64| n as f64 * 100.0 / brazilian as f64;
        assert!((5.0..6.3).contains(&share(in_sao_paulo)), "São Paulo's share: {:.2}%", share(in_sao_paulo));
        assert!((1.6..2.8).contains(&share(in_small)), "small towns' share: {:.2}%", share(in_small));
    }

    #[test]
    fn email_local_parts_fold_accents() {
        assert_eq!(fold("Gonçalves"), "goncalves");
        assert_eq!(fold("Antônio"), "antonio");
    }
}
