//! What the candle examples share: their `--name value` arguments, a small deterministic
//! generator, and a slot with raw text bytes for the ring (which never decodes text).
#![allow(dead_code)] // each example uses part of it

use vigil::candle::Slot;

/// The number after `name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift), so runs are comparable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A slot with a city, a state, a birth date, a phone and three inline text fields of the
/// lengths `lens` draws after them (the prayer's tag 0xFF when `overflow`); raw bytes stand for
/// compressed ones.
pub fn random_slot(rng: &mut Rng, overflow: bool, lens: impl FnOnce(&mut Rng) -> [usize; 3]) -> Slot {
    let mut s = Slot::empty();
    s.set_city(rng.below(5570) as u16);
    s.set_place(rng.below(27) as u8, 76);
    s.set_birth_days(20_000 + rng.below(30_000) as u16);
    s.set_phone(11_900_000_000 + rng.below(99_999_999), rng.below(2) == 0);
    let lens = lens(rng);
    let region = s.text_region_mut();
    let mut at = 0;
    for (field, len) in lens.into_iter().enumerate() {
        if field == 2 && overflow {
            region[at] = 0xFF;
            break;
        }
        region[at] = len as u8;
        for b in &mut region[at + 1..at + 1 + len] {
            *b = rng.next() as u8;
        }
        at += 1 + len;
    }
    s.sync_overflow_flags();
    s
}
