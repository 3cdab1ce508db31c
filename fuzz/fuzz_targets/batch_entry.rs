//! Batch entries as logged (`partition::batch::BatchReader`) and their routing to the projections
//! (`projection::Router::apply_entry`). Checks: nothing panics; a batch that decodes re-encodes to
//! exactly itself through `BatchWriter`; the router hands out one result per command, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::kv::KvLimits;
use vigil::partition::batch::{BatchLimits, BatchReader, BatchWriter};
use vigil::projection::Router;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = BatchReader::new(data) {
        let limits = BatchLimits { bytes_max: data.len().max(64), writes_max: usize::from(batch.count) };
        let mut w = BatchWriter::new(limits);
        let timestamp = batch.timestamp;
        for c in batch.clone() {
            w.push(c.tag, &c.owner, c.bytes.len(), |out| out.copy_from_slice(c.bytes));
        }
        assert_eq!(w.seal(timestamp), data, "a batch that decoded does not re-encode to itself");
        let mut router = Router::new(KvLimits::small(), Vec::new());
        let mut positions = Vec::new();
        assert!(router.apply_entry(1, data, &mut |i, _| positions.push(i)));
        assert_eq!(positions, (0..batch.count).collect::<Vec<_>>());
    }
    let mut router = Router::new(KvLimits::small(), Vec::new());
    let _ = router.apply_entry(1, data, &mut |_, _| {});
    let _ = router.apply_entry(2, data, &mut |_, _| {});
});
