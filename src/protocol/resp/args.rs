//! The argument table of one request: where each argument lies, as (offset, length) pairs into the
//! connection's input buffer, or into the table's own scratch bytes for an inline argument whose
//! quotes or escapes make it differ from the bytes on the wire.
//!
//! Invariants: both vectors are allocated once, in [`ArgTable::new`], with the capacities the limits
//! give (`args_max` spans, `inline_bytes_max` scratch bytes), and the parser never pushes past them,
//! so steady-state parsing allocates nothing. The table is valid for the buffer it was parsed from
//! until the next `parse_request` clears it; one table per shard suffices, since a request is
//! executed before the next is parsed.

use super::request::RespLimits;

/// Where one argument's bytes lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ArgSpan {
    offset: u32,
    len: u32,
    /// In the table's scratch bytes (an unescaped inline argument), not in the input buffer.
    scratch: bool,
}

/// The arguments of the last request parsed (see the module header).
#[derive(Debug)]
pub struct ArgTable {
    spans: Vec<ArgSpan>,
    scratch: Vec<u8>,
}

impl ArgTable {
    /// Allocates the table once for requests within `limits`.
    ///
    /// Panics if a limit exceeds `u32::MAX` bytes (a programmer error: limits are validated from
    /// config long before that).
    pub fn new(limits: &RespLimits) -> Self {
        assert!(u32::try_from(limits.request_bytes_max).is_ok(), "request_bytes_max over 4 GiB");
        assert!(u32::try_from(limits.inline_bytes_max).is_ok(), "inline_bytes_max over 4 GiB");
        Self {
            spans: Vec::with_capacity(limits.args_max),
            scratch: Vec::with_capacity(limits.inline_bytes_max),
        }
    }

    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the last request had no argument (an empty line, `*0`).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i` of the request parsed from `buf`. Panics if `i >= len()`.
    pub fn get<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        let span = self.spans[i];
        let (start, len) = (span.offset as usize, span.len as usize);
        if span.scratch {
            &self.scratch[start..start + len]
        } else {
            &buf[start..start + len]
        }
    }

    /// The arguments with the buffer they were parsed from, for command parsing.
    pub fn view<'a>(&'a self, buf: &'a [u8]) -> Args<'a> {
        Args { table: self, buf }
    }

    pub(super) fn clear(&mut self) {
        self.spans.clear();
        self.scratch.clear();
    }

    pub(super) fn is_full(&self) -> bool {
        self.spans.len() == self.spans.capacity()
    }

    /// Records an argument lying in the input buffer. The caller checked `is_full` and the limits.
    pub(super) fn push_buf(&mut self, offset: usize, len: usize) {
        debug_assert!(!self.is_full());
        self.spans.push(ArgSpan { offset: offset as u32, len: len as u32, scratch: false });
    }

    /// Starts an argument in the scratch bytes; `push_scratch_byte` then appends to it.
    pub(super) fn begin_scratch(&mut self) -> usize {
        self.scratch.len()
    }

    pub(super) fn push_scratch_byte(&mut self, byte: u8) {
        debug_assert!(self.scratch.len() < self.scratch.capacity());
        self.scratch.push(byte);
    }

    pub(super) fn extend_scratch(&mut self, bytes: &[u8]) {
        debug_assert!(self.scratch.len() + bytes.len() <= self.scratch.capacity());
        self.scratch.extend_from_slice(bytes);
    }

    pub(super) fn end_scratch(&mut self, start: usize) {
        debug_assert!(!self.is_full());
        let len = self.scratch.len() - start;
        self.spans.push(ArgSpan { offset: start as u32, len: len as u32, scratch: true });
    }

    /// Whether the spans and scratch kept the capacities they were allocated with (tests).
    #[cfg(test)]
    pub(super) fn capacities(&self) -> (usize, usize) {
        (self.spans.capacity(), self.scratch.capacity())
    }
}

/// A parsed request's arguments, bound to the buffer they came from. Copy, allocation-free.
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    table: &'a ArgTable,
    buf: &'a [u8],
}

impl<'a> Args<'a> {
    /// Number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there is no argument.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Argument `i`. Panics if `i >= len()`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        self.table.get(self.buf, i)
    }

    /// Arguments `start..end` (a multi-key command's keys). Panics if the range is out of bounds.
    pub fn list(&self, start: usize, end: usize) -> ArgList<'a> {
        assert!(start <= end && end <= self.len(), "argument range {start}..{end} of {}", self.len());
        ArgList { args: *self, start, end }
    }
}

/// A range of a request's arguments (the keys of DEL, MGET; the pairs of MSET), without a copy.
#[derive(Clone, Copy, Debug)]
pub struct ArgList<'a> {
    args: Args<'a>,
    start: usize,
    end: usize,
}

impl<'a> ArgList<'a> {
    /// Number of arguments in the range.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Argument `i` of the range. Panics if `i >= len()`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        assert!(i < self.len(), "argument {i} of a range of {}", self.len());
        self.args.get(self.start + i)
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let args = self.args;
        (self.start..self.end).map(move |i| args.get(i))
    }

    /// The range as (first index, end index) in the request's argument table.
    pub fn bounds(&self) -> (usize, usize) {
        (self.start, self.end)
    }
}

impl PartialEq for ArgList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for ArgList<'_> {}
