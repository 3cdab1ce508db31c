//! Round trips, truncation and garbage for the v1 codec.

use super::*;
use proptest::prelude::*;

fn datagram(frames: &[(u8, u64, Vec<u8>)]) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let mut w = DatagramWriter::request(&mut buf, 42).unwrap();
    for (op, id, body) in frames {
        w.push(*op, 0, *id, body).unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

#[test]
fn header_layout_is_as_documented() {
    let d = datagram(&[(2, 0x0102030405060708, b"hi".to_vec())]);
    assert_eq!(&d[0..2], b"VG");
    assert_eq!(d[2], VERSION);
    assert_eq!(d[3], 0);
    assert_eq!(&d[4..6], &[1, 0]);
    assert_eq!(&d[8..16], &42u64.to_le_bytes());
    // Frame: opcode, status, reserved, body_len, request_id, body.
    assert_eq!(d[16], 2);
    assert_eq!(d[17], 0);
    assert_eq!(&d[20..24], &2u32.to_le_bytes());
    assert_eq!(&d[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&d[32..], b"hi");
}

#[test]
fn short_and_foreign_datagrams_are_refused() {
    assert_eq!(decode_header(&[]), Err(HeaderError::Short));
    assert_eq!(decode_header(b"VG\x01\x00"), Err(HeaderError::Short));
    assert_eq!(decode_header(&[0u8; 16]), Err(HeaderError::BadMagic));
}

#[test]
fn body_past_end_names_the_frame() {
    let mut d = datagram(&[(3, 9, b"abcdef".to_vec())]);
    d.truncate(d.len() - 1);
    let h = decode_header(&d).unwrap();
    let got: Vec<_> = Frames::new(&d, h.count).collect();
    assert_eq!(got, vec![Err(FrameError::BodyPastEnd { opcode: 3, request_id: 9, body_len: 6 })]);
}

#[test]
fn writer_refuses_what_does_not_fit() {
    let mut buf = [0u8; HEADER_LEN + FRAME_HEADER_LEN + 4];
    let mut w = DatagramWriter::response(&mut buf, 1).unwrap();
    assert_eq!(w.push(1, 0, 1, b"12345"), Err(NoRoom));
    assert!(w.push(1, 0, 1, b"1234").is_ok());
    assert_eq!(w.push(1, 0, 2, b""), Err(NoRoom));
    assert_eq!(w.finish(), buf.len());
    assert!(decode_header(&buf).unwrap().is_response());
    assert!(DatagramWriter::request(&mut [0u8; 15], 0).is_err());
}

#[test]
fn a_resumed_response_appends_frames_after_the_earlier_ones() {
    let mut buf = [0u8; 128];
    let mut w = DatagramWriter::response(&mut buf, 5).unwrap();
    w.push(0x11, 0, 1, b"one").unwrap();
    let len = w.finish();
    let mut w = DatagramWriter::resume_response(&mut buf, 5, len, 1).unwrap();
    w.push(0x12, 9, 2, b"").unwrap();
    let len = w.finish();
    let h = decode_header(&buf[..len]).unwrap();
    assert_eq!((h.count, h.client_id, h.is_response()), (2, 5, true));
    let frames: Vec<_> = Frames::new(&buf[..len], h.count).map(|f| f.unwrap()).collect();
    assert_eq!(
        frames.iter().map(|f| (f.opcode, f.status, f.request_id)).collect::<Vec<_>>(),
        [(0x11, 0, 1), (0x12, 9, 2)]
    );
    assert_eq!(frames[0].body, b"one");
    assert!(DatagramWriter::resume_response(&mut buf, 5, HEADER_LEN - 1, 0).is_err());
    assert!(DatagramWriter::resume_response(&mut buf, 5, 129, 0).is_err());
}

#[test]
fn status_bytes_round_trip() {
    for b in 0..=255u8 {
        if let Some(s) = Status::from_u8(b) {
            assert_eq!(s as u8, b);
            assert!(!s.name().is_empty());
        }
    }
    assert_eq!(Status::from_u8(19), Some(Status::SequenceReused));
    assert_eq!(Status::from_u8(20).map(Status::name), Some("SEQUENCE_TOO_FAR"));
    assert_eq!(Status::from_u8(21).map(Status::name), Some("INVALID"));
    assert_eq!(Status::from_u8(25).map(Status::name), Some("QUOTA_EXCEEDED"));
    assert_eq!(Status::from_u8(26), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn frames_round_trip(frames in proptest::collection::vec(
        (any::<u8>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20)) {
        let d = datagram(&frames);
        let h = decode_header(&d).unwrap();
        prop_assert_eq!(h.count as usize, frames.len());
        prop_assert_eq!(h.client_id, 42);
        let mut it = Frames::new(&d, h.count);
        for (op, id, body) in &frames {
            let f = it.next().unwrap().unwrap();
            prop_assert_eq!((f.opcode, f.request_id, f.body), (*op, *id, &body[..]));
        }
        prop_assert!(it.next().is_none());
        prop_assert!(it.remainder().is_empty());
    }

    #[test]
    fn truncation_is_always_detected(
        frames in proptest::collection::vec((any::<u8>(), any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64)), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let d = datagram(&frames);
        let cut = cut.index(d.len());
        let t = &d[..cut];
        match decode_header(t) {
            Err(e) => prop_assert_eq!(e, HeaderError::Short),
            Ok(h) => {
                let results: Vec<_> = Frames::new(t, h.count).collect();
                prop_assert!(results.iter().any(|r| r.is_err()), "cut at {} not detected", cut);
            }
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 2 {
            bytes[0..2].copy_from_slice(&MAGIC);
        }
        if let Ok(h) = decode_header(&bytes) {
            for _ in Frames::new(&bytes, h.count) {}
        }
    }
}
