//! The receive side of the tests' in-memory servers: answers queued by `tx_burst`, handed back
//! by `rx_burst` as datagrams from the server's address. One copy for every fake `PacketIo`.

use std::collections::VecDeque;
use vigil_pmd::mem::VecRx;
use vigil_pmd::{Batch, Peer};

/// Moves queued answers into `batch` (as many as it has room for), each from `server`.
pub fn rx_answers(answers: &mut VecDeque<Vec<u8>>, batch: &mut Batch<VecRx>, server: Peer) -> usize {
    let mut n = 0;
    while batch.room() > 0 {
        let Some(a) = answers.pop_front() else { break };
        assert!(batch.push(VecRx::new(a, server)).is_ok());
        n += 1;
    }
    n
}
