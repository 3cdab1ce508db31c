//! The place tables a candle refers to, shipped as data (`data/candle/*.csv`, see its README) and
//! parsed once into lookups: the 5,570 IBGE municipalities, the 27 states (with their capitals and
//! telephone area codes) and the ISO 3166-1 countries.
//!
//! Invariants: a municipality's dense index is its row in `municipalities.csv` (sorted by IBGE
//! code) and a country's index its row in `countries.csv` (sorted by ISO numeric code): both are
//! stored in slots, so rows are only ever appended by a new layout version, never reordered. The
//! tables are checked when parsed (counts, sorting, every city's state known): a bad table is a
//! build defect and panics at first use, never a client error.

use std::collections::HashMap;
use std::sync::OnceLock;

const MUNICIPALITIES_CSV: &str = include_str!("../../data/candle/municipalities.csv");
const STATES_CSV: &str = include_str!("../../data/candle/states.csv");
const STATE_PHONE_CSV: &str = include_str!("../../data/candle/state_phone.csv");
const COUNTRIES_CSV: &str = include_str!("../../data/candle/countries.csv");

/// Municipalities in the IBGE table.
pub const MUNICIPALITY_COUNT: usize = 5_570;
/// Brazilian states (26 and the Federal District).
pub const STATE_COUNT: usize = 27;
/// ISO 3166-1 numeric code of Brazil.
pub const BRAZIL_NUMERIC: u16 = 76;

/// One municipality.
#[derive(Debug)]
pub struct City {
    /// Its 7-digit IBGE code.
    pub ibge_code: u32,
    /// Its name, with accents.
    pub name: &'static str,
    /// Its state's index (0..27).
    pub state: u8,
}

/// One state (UF).
#[derive(Debug)]
pub struct State {
    /// The two-letter UF ("SP").
    pub uf: &'static str,
    /// Its 2-digit IBGE code.
    pub ibge_code: u8,
    /// Its name, with accents.
    pub name: &'static str,
    /// Its capital's dense city index.
    pub capital: u16,
    /// Its telephone area codes (DDD), the capital's first.
    pub ddds: Vec<u8>,
}

/// One ISO 3166-1 country.
#[derive(Debug)]
pub struct Country {
    /// ISO numeric code.
    pub numeric: u16,
    /// ISO alpha-2 code.
    pub alpha2: &'static str,
    /// English short name.
    pub name: &'static str,
}

/// The parsed tables and their lookups.
#[derive(Debug)]
pub struct Tables {
    /// Municipalities by dense index.
    pub cities: Vec<City>,
    /// States by index (sorted by IBGE state code).
    pub states: Vec<State>,
    /// Countries by index (sorted by numeric code).
    pub countries: Vec<Country>,
    city_by_code: HashMap<u32, u16>,
    city_by_name: HashMap<&'static str, Vec<u16>>,
    state_by_uf: HashMap<&'static str, u8>,
    country_by_numeric: HashMap<u16, u8>,
    ddd_to_state: [Option<u8>; 100],
}

/// The tables, parsed at first use.
pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(Tables::parse)
}

fn rows(csv: &'static str, columns: usize) -> impl Iterator<Item = Vec<&'static str>> {
    // The last column may hold commas (country names): split at the first `columns - 1`.
    csv.lines().skip(1).filter(|l| !l.is_empty()).map(move |l| {
        let cols: Vec<&str> = l.splitn(columns, ',').collect();
        assert_eq!(cols.len(), columns, "table row {l:?}");
        cols
    })
}

impl Tables {
    fn parse() -> Self {
        let mut state_by_uf = HashMap::new();
        let mut states: Vec<State> = Vec::with_capacity(STATE_COUNT);
        for c in rows(STATES_CSV, 3) {
            state_by_uf.insert(c[0], states.len() as u8);
            let ibge_code = c[1].parse().expect("state code");
            states.push(State { uf: c[0], ibge_code, name: c[2], capital: 0, ddds: Vec::new() });
        }
        assert_eq!(states.len(), STATE_COUNT);
        let (cities, city_by_code, city_by_name) = Self::parse_cities(&state_by_uf);
        let mut ddd_to_state = [None; 100];
        for c in rows(STATE_PHONE_CSV, 3) {
            let s = state_by_uf[c[0]];
            let capital: u32 = c[1].parse().expect("capital code");
            states[usize::from(s)].capital = city_by_code[&capital];
            for d in c[2].split(' ') {
                let d: u8 = d.parse().expect("ddd");
                ddd_to_state[usize::from(d)] = Some(s);
                states[usize::from(s)].ddds.push(d);
            }
        }
        assert!(states.iter().all(|s| !s.ddds.is_empty()), "every state has an area code");
        let mut countries = Vec::new();
        let mut country_by_numeric = HashMap::new();
        for c in rows(COUNTRIES_CSV, 3) {
            let numeric: u16 = c[0].parse().expect("numeric");
            assert!(countries.last().is_none_or(|p: &Country| p.numeric < numeric), "sorted");
            country_by_numeric.insert(numeric, countries.len() as u8);
            countries.push(Country { numeric, alpha2: c[1], name: c[2] });
        }
        assert!(countries.len() <= 256, "a country index is a u8");
        Tables {
            cities,
            states,
            countries,
            city_by_code,
            city_by_name,
            state_by_uf,
            country_by_numeric,
            ddd_to_state,
        }
    }

    #[allow(clippy::type_complexity)]
    fn parse_cities(
        state_by_uf: &HashMap<&'static str, u8>,
    ) -> (Vec<City>, HashMap<u32, u16>, HashMap<&'static str, Vec<u16>>) {
        let mut cities: Vec<City> = Vec::with_capacity(MUNICIPALITY_COUNT);
        let mut by_code = HashMap::with_capacity(MUNICIPALITY_COUNT);
        let mut by_name: HashMap<&'static str, Vec<u16>> = HashMap::new();
        for c in rows(MUNICIPALITIES_CSV, 3) {
            let ibge_code: u32 = c[0].parse().expect("ibge code");
            assert!(cities.last().is_none_or(|p| p.ibge_code < ibge_code), "sorted by code");
            let state = state_by_uf[c[2]];
            let index = cities.len() as u16;
            by_code.insert(ibge_code, index);
            by_name.entry(c[1]).or_default().push(index);
            cities.push(City { ibge_code, name: c[1], state });
        }
        assert_eq!(cities.len(), MUNICIPALITY_COUNT);
        (cities, by_code, by_name)
    }

    /// The dense index of the municipality with this IBGE code.
    pub fn city_index(&self, ibge_code: u32) -> Option<u16> {
        self.city_by_code.get(&ibge_code).copied()
    }

    /// The municipality at a dense index.
    pub fn city(&self, index: u16) -> Option<&City> {
        self.cities.get(usize::from(index))
    }

    /// The dense index of the municipality named exactly `name` in the state `state`.
    pub fn city_by_name(&self, name: &str, state: u8) -> Option<u16> {
        // A name is shared by a few cities of different states (232 names): scan those.
        let found = self.city_by_name.get(name)?;
        found.iter().copied().find(|&i| self.cities[usize::from(i)].state == state)
    }

    /// The index of the state with this UF ("SP").
    pub fn state_index(&self, uf: &str) -> Option<u8> {
        self.state_by_uf.get(uf).copied()
    }

    /// The state at an index.
    pub fn state(&self, index: u8) -> Option<&State> {
        self.states.get(usize::from(index))
    }

    /// The index of the country with this ISO numeric code.
    pub fn country_index(&self, numeric: u16) -> Option<u8> {
        self.country_by_numeric.get(&numeric).copied()
    }

    /// The country at an index.
    pub fn country(&self, index: u8) -> Option<&Country> {
        self.countries.get(usize::from(index))
    }

    /// The state whose area codes include `ddd`, if it is a Brazilian area code.
    pub fn ddd_state(&self, ddd: u8) -> Option<u8> {
        self.ddd_to_state.get(usize::from(ddd)).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hold_every_municipality_state_and_country() {
        let t = tables();
        assert_eq!(t.cities.len(), MUNICIPALITY_COUNT);
        assert_eq!(t.states.len(), STATE_COUNT);
        assert_eq!(t.countries.len(), 249);
        let sp = t.state_index("SP").expect("SP");
        assert_eq!(t.state(sp).expect("state").name, "São Paulo");
        let c = t.city_index(3_550_308).expect("São Paulo city");
        assert_eq!(t.city(c).expect("city").name, "São Paulo");
        assert_eq!(t.city_by_name("São Paulo", sp), Some(c));
        assert_eq!(t.state(sp).expect("state").capital, c);
        assert_eq!(t.ddd_state(11), Some(sp));
        assert_eq!(t.ddd_state(20), None);
        let br = t.country_index(BRAZIL_NUMERIC).expect("Brazil");
        assert_eq!(t.country(br).expect("country").alpha2, "BR");
        assert_eq!(
            t.country(t.country_index(68).expect("BO")).expect("BO").name,
            "Bolivia, Plurinational State of"
        );
    }

    #[test]
    fn dense_indexes_follow_ibge_code_order() {
        let t = tables();
        assert_eq!(t.city_index(1_100_015), Some(0), "Alta Floresta D'Oeste is the first code");
        assert_eq!(t.city(5_569).expect("last").ibge_code, 5_300_108, "Brasília is the last");
        assert_eq!(t.city(5_570).map(|c| c.ibge_code), None);
        assert_eq!(t.city(t.city_index(2_927_408).expect("Salvador")).expect("c").name, "Salvador");
    }
}
