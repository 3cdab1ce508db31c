//! The candle slot: exactly 128 bytes (two cache lines), the unit the candle ring stores (seed 000,
//! DESIGN.md section 5). This module owns the byte layout and its accessors; the text codec
//! (`candle::text`) fills the text region and the projection (`candle::ring`) stamps the lit time
//! and patches overflow offsets, each through the functions here, so the layout is written once.
//!
//! | bytes    | field                                                                            |
//! |----------|----------------------------------------------------------------------------------|
//! | 0..4     | lit at: seconds since the Unix epoch, u32 LE, stamped from the leader's time     |
//! | 4        | flags: bit 0 occupied; bits 1..=3 text field 0..=2 is in its overflow pool        |
//! | 5        | layout version ([`LAYOUT_VERSION`])                                              |
//! | 6        | text model version (the trained dictionary or symbol table that encoded the text) |
//! | 7        | reserved, zero                                                                   |
//! | 8..10    | date of birth: days since 1900-01-01, u16 LE (to 2079-06-06)                      |
//! | 10..15   | phone: 40 bits LE; bits 0..37 the 11-digit number, bit 37 has WhatsApp, 38..40 zero |
//! | 15..17   | city: dense index into the IBGE municipality table, u16 LE; `NO_CITY` abroad      |
//! | 17..19   | place: u16 LE; bits 0..5 state index (`NO_STATE`: none), bits 5..13 country index |
//! | 19..128  | text region: the three text fields in [`TextField`] order, then zero bytes       |
//!
//! A text field in the region is a tag byte and its bytes: a tag `0..=0xFE` is the length of the
//! compressed value that follows inline; the tag [`OVERFLOW_MARKER`] (0xFF) is followed by a 3-byte
//! LE offset into that field's overflow pool, where the value lies (the pool's own framing).
//!
//! Invariants: every accessor reads only its bytes, so a slot is decoded without a copy; the text
//! walk ([`text_fields`]) never reads past byte 128 and reports a region that does not parse as
//! `None` instead of panicking (slots come from disk and from the network).

/// Bytes of a slot.
pub const SLOT_BYTES: usize = 128;
/// The layout version this build writes and reads.
pub const LAYOUT_VERSION: u8 = 1;
/// The text-field tag that says "in the overflow pool", followed by a 3-byte offset.
pub const OVERFLOW_MARKER: u8 = 0xFF;
/// First byte of the text region.
pub const TEXT_START: usize = 19;
/// Bytes of the text region.
pub const TEXT_REGION_BYTES: usize = SLOT_BYTES - TEXT_START;
/// Largest offset an overflow reference can hold (3 bytes).
pub const OVERFLOW_OFFSET_MAX: u32 = (1 << 24) - 1;
/// The city index of a candle lit from abroad (no Brazilian municipality).
pub const NO_CITY: u16 = u16::MAX;
/// The state index of a candle with no Brazilian state.
pub const NO_STATE: u8 = 31;
/// Largest phone number the 37 phone bits hold (11 digits need 37 bits).
pub const PHONE_MAX: u64 = 99_999_999_999;

const FLAG_OCCUPIED: u8 = 1;
const PHONE_BITS: u32 = 37;
const WHATSAPP_BIT: u64 = 1 << PHONE_BITS;

/// The three text fields of a candle, in their order in the text region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextField {
    /// Name and e-mail, compressed together.
    NameEmail = 0,
    /// Address and neighbourhood, compressed together.
    AddressNeighbourhood = 1,
    /// The prayer intention.
    Prayer = 2,
}

impl TextField {
    /// All three, in region order.
    pub const ALL: [TextField; 3] =
        [TextField::NameEmail, TextField::AddressNeighbourhood, TextField::Prayer];

    /// Its index (0..3): the region order, and the overflow pool it uses.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where one text field's value lies, as its slot says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextRef<'a> {
    /// Inline in the slot: the compressed bytes.
    Inline(&'a [u8]),
    /// In the field's overflow pool at this offset; `marker_at` is the slot byte of its 0xFF tag.
    Overflow {
        /// Offset into the field's overflow pool.
        offset: u32,
        /// Index in the slot of the marker byte (the offset's 3 bytes follow it).
        marker_at: usize,
    },
}

/// A 128-byte candle record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Slot(pub [u8; SLOT_BYTES]);

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("lit_at", &self.lit_at())
            .field("city", &self.city())
            .field("state", &self.state())
            .field("country", &self.country())
            .finish_non_exhaustive()
    }
}

impl Default for Slot {
    fn default() -> Self {
        Self::empty()
    }
}

impl Slot {
    /// An empty slot of this layout version: occupied, nothing lit yet, text region all zero.
    pub fn empty() -> Self {
        let mut b = [0u8; SLOT_BYTES];
        b[4] = FLAG_OCCUPIED;
        b[5] = LAYOUT_VERSION;
        Self(b)
    }

    /// The slot as bytes.
    pub fn as_bytes(&self) -> &[u8; SLOT_BYTES] {
        &self.0
    }

    /// Seconds since the Unix epoch when it was lit (0 before the leader stamped it).
    pub fn lit_at(&self) -> u32 {
        u32::from_le_bytes(self.0[0..4].try_into().expect("4 bytes"))
    }

    /// Stamps the time it was lit (leader's time, at apply).
    pub fn set_lit_at(&mut self, secs: u32) {
        self.0[0..4].copy_from_slice(&secs.to_le_bytes());
    }

    /// Whether the slot holds a candle.
    pub fn occupied(&self) -> bool {
        self.0[4] & FLAG_OCCUPIED != 0
    }

    /// Whether `field`'s value is in its overflow pool (the flag; the tag says the same).
    pub fn overflow_flag(&self, field: TextField) -> bool {
        self.0[4] & (2 << field.index()) != 0
    }

    /// The layout version byte.
    pub fn layout_version(&self) -> u8 {
        self.0[5]
    }

    /// The text model version that encoded the text fields.
    pub fn text_model(&self) -> u8 {
        self.0[6]
    }

    /// Sets the text model version.
    pub fn set_text_model(&mut self, version: u8) {
        self.0[6] = version;
    }

    /// Date of birth in days since 1900-01-01.
    pub fn birth_days(&self) -> u16 {
        u16::from_le_bytes([self.0[8], self.0[9]])
    }

    /// Sets the date of birth in days since 1900-01-01.
    pub fn set_birth_days(&mut self, days: u16) {
        self.0[8..10].copy_from_slice(&days.to_le_bytes());
    }

    /// The phone number (up to 11 digits) and whether it has WhatsApp.
    pub fn phone(&self) -> (u64, bool) {
        let mut b = [0u8; 8];
        b[..5].copy_from_slice(&self.0[10..15]);
        let raw = u64::from_le_bytes(b);
        (raw & (WHATSAPP_BIT - 1), raw & WHATSAPP_BIT != 0)
    }

    /// Sets the phone number; `number` must be at most [`PHONE_MAX`] (the codec validates it).
    pub fn set_phone(&mut self, number: u64, whatsapp: bool) {
        debug_assert!(number <= PHONE_MAX);
        let raw = (number & (WHATSAPP_BIT - 1)) | if whatsapp { WHATSAPP_BIT } else { 0 };
        self.0[10..15].copy_from_slice(&raw.to_le_bytes()[..5]);
    }

    /// The city's index in the IBGE table, or [`NO_CITY`].
    pub fn city(&self) -> u16 {
        u16::from_le_bytes([self.0[15], self.0[16]])
    }

    /// Sets the city index.
    pub fn set_city(&mut self, index: u16) {
        self.0[15..17].copy_from_slice(&index.to_le_bytes());
    }

    fn place(&self) -> u16 {
        u16::from_le_bytes([self.0[17], self.0[18]])
    }

    /// The state's index (0..27), or [`NO_STATE`].
    pub fn state(&self) -> u8 {
        (self.place() & 0x1F) as u8
    }

    /// The country's index in the ISO 3166-1 table.
    pub fn country(&self) -> u8 {
        ((self.place() >> 5) & 0xFF) as u8
    }

    /// Sets the state index (5 bits) and the country index (8 bits).
    pub fn set_place(&mut self, state: u8, country: u8) {
        debug_assert!(state <= NO_STATE);
        let place = u16::from(state & 0x1F) | u16::from(country) << 5;
        self.0[17..19].copy_from_slice(&place.to_le_bytes());
    }

    /// The text region (bytes 19..128).
    pub fn text_region(&self) -> &[u8] {
        &self.0[TEXT_START..]
    }

    /// The text region, to be filled by the text codec (tags and values as the module header
    /// says); the codec then calls [`Slot::sync_overflow_flags`].
    pub fn text_region_mut(&mut self) -> &mut [u8] {
        &mut self.0[TEXT_START..]
    }

    /// Sets flag bits 1..=3 from the region's tags (after the codec wrote the region).
    pub fn sync_overflow_flags(&mut self) {
        let mut flags = self.0[4] & !0b1110;
        if let Some(refs) = text_fields(self) {
            for (i, r) in refs.iter().enumerate() {
                if matches!(r, TextRef::Overflow { .. }) {
                    flags |= 2 << i;
                }
            }
        }
        self.0[4] = flags;
    }

    /// Writes `offset` into the overflow reference of `field`; false if that field is inline (or the
    /// region does not parse), so nothing was written. The projection calls it at apply, once it
    /// placed the value in the field's pool.
    pub fn set_overflow_offset(&mut self, field: TextField, offset: u32) -> bool {
        debug_assert!(offset <= OVERFLOW_OFFSET_MAX);
        let Some(refs) = text_fields(self) else { return false };
        match refs[field.index()] {
            TextRef::Overflow { marker_at, .. } => {
                let at = marker_at + 1;
                self.0[at..at + 3].copy_from_slice(&offset.to_le_bytes()[..3]);
                true
            }
            TextRef::Inline(_) => false,
        }
    }
}

/// The three text fields of `slot`, in region order; `None` if the region does not parse (a tag
/// runs past the slot's end).
pub fn text_fields(slot: &Slot) -> Option<[TextRef<'_>; 3]> {
    let region = slot.text_region();
    let mut at = 0usize;
    let mut out = [TextRef::Inline(&[]); 3];
    for r in &mut out {
        let tag = *region.get(at)?;
        if tag == OVERFLOW_MARKER {
            let b = region.get(at + 1..at + 4)?;
            let offset = u32::from_le_bytes([b[0], b[1], b[2], 0]);
            *r = TextRef::Overflow { offset, marker_at: TEXT_START + at };
            at += 4;
        } else {
            let len = usize::from(tag);
            *r = TextRef::Inline(region.get(at + 1..at + 1 + len)?);
            at += 1 + len;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region_with(fields: &[&[u8]]) -> Slot {
        let mut s = Slot::empty();
        let mut at = 0;
        for f in fields {
            s.text_region_mut()[at..at + f.len()].copy_from_slice(f);
            at += f.len();
        }
        s.sync_overflow_flags();
        s
    }

    #[test]
    fn fixed_fields_round_trip_at_their_bytes() {
        let mut s = Slot::empty();
        s.set_lit_at(1_796_000_000);
        s.set_birth_days(u16::MAX);
        s.set_phone(PHONE_MAX, true);
        s.set_city(5569);
        s.set_place(26, 249);
        s.set_text_model(3);
        assert_eq!(s.lit_at(), 1_796_000_000);
        assert_eq!(s.birth_days(), u16::MAX);
        assert_eq!(s.phone(), (PHONE_MAX, true));
        assert_eq!(s.city(), 5569);
        assert_eq!((s.state(), s.country()), (26, 249));
        assert_eq!(s.text_model(), 3);
        assert!(s.occupied());
        assert_eq!(s.layout_version(), LAYOUT_VERSION);
        s.set_phone(11_987_654_321, false);
        assert_eq!(s.phone(), (11_987_654_321, false));
        assert_eq!(s.city(), 5569, "the phone's bytes end before the city's");
    }

    #[test]
    fn text_walk_finds_inline_and_overflow_fields_and_patches_offsets() {
        let mut s = region_with(&[&[3, b'a', b'b', b'c'], &[0xFF, 0, 0, 0], &[1, b'z']]);
        assert!(s.overflow_flag(TextField::AddressNeighbourhood));
        assert!(!s.overflow_flag(TextField::Prayer));
        assert!(s.set_overflow_offset(TextField::AddressNeighbourhood, 0x12_3456));
        assert!(!s.set_overflow_offset(TextField::Prayer, 7));
        let f = text_fields(&s).expect("parses");
        assert_eq!(f[0], TextRef::Inline(b"abc"));
        assert_eq!(f[1], TextRef::Overflow { offset: 0x12_3456, marker_at: TEXT_START + 4 });
        assert_eq!(f[2], TextRef::Inline(b"z"));
    }

    #[test]
    fn a_region_whose_tags_run_past_the_end_is_refused() {
        let s = region_with(&[&[108]]);
        assert!(text_fields(&s).is_none());
        let s = region_with(&[&[107]]);
        assert!(text_fields(&s).is_none(), "two more tags needed after 108 bytes");
        let mut s = Slot::empty();
        s.text_region_mut()[0] = 105;
        s.text_region_mut()[106] = 0;
        s.text_region_mut()[107] = 0;
        assert!(text_fields(&s).is_some(), "105 + 1 and two empty fields fill 108 of 109 bytes");
    }
}
