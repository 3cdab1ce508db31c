//! Inline commands: one line, split into arguments by Redis's rules (`sdssplitargs` in redis
//! `sds.c`, called from `processInlineBuffer` in `networking.c`). redis-benchmark's PING_INLINE and
//! a human on telnet send these.
//!
//! The rules, as Redis applies them: blanks (`isspace`) separate arguments; an unquoted argument
//! ends at a space, tab, CR, LF or the end; `"..."` takes the escapes `\n \r \t \b \a \xHH` and
//! `\<any>`; `'...'` takes only `\'`; a closing quote must be followed by a blank or the end; a
//! quote may open in the middle of an argument (`a"b c"` is `ab c`). The line ends at `\n` (a `\r`
//! before it is dropped) and, as in C, at a NUL byte.
//!
//! Invariants: an argument without quotes is a span of the input buffer; a quoted one is unescaped
//! into the table's scratch bytes, never longer than the line, so never past their capacity
//! (`inline_bytes_max`); a line longer than `inline_bytes_max` is refused whether or not its end has
//! arrived, so the outcome does not depend on how the bytes were split into reads.

use super::args::ArgTable;
use super::request::{Parsed, RespError, RespLimits};

/// Parses the inline request at the start of `buf` into `args`.
pub(super) fn parse_inline(
    buf: &[u8],
    args: &mut ArgTable,
    limits: &RespLimits,
) -> Result<Parsed, RespError> {
    let window = &buf[..buf.len().min(limits.inline_bytes_max.saturating_add(1))];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.inline_bytes_max {
            Err(RespError::TooBigInline)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let mut line_end = newline;
    if line_end > 0 && buf[line_end - 1] == b'\r' {
        line_end -= 1;
    }
    if line_end > limits.inline_bytes_max {
        return Err(RespError::TooBigInline);
    }
    let line = &buf[..line_end];
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    split_args(line, args, limits)?;
    let consumed = newline + 1;
    Ok(if args.is_empty() { Parsed::Empty { consumed } } else { Parsed::Request { consumed } })
}

/// C's `isspace`: the blanks skipped between arguments.
fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `sdssplitargs` over `line` (no NUL inside), pushing each argument into `args`.
fn split_args(line: &[u8], args: &mut ArgTable, limits: &RespLimits) -> Result<(), RespError> {
    let mut p = 0;
    loop {
        while p < line.len() && is_blank(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        if args.is_full() {
            return Err(RespError::TooBigInline);
        }
        p = split_one(line, p, args)?;
        let last = args.len() - 1;
        if args.get(line, last).len() > limits.arg_bytes_max {
            return Err(RespError::TooBigInline);
        }
    }
}

/// The byte at `i`, or 0 past the end (the C string's terminator).
fn at(line: &[u8], i: usize) -> u8 {
    line.get(i).copied().unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// Splits the argument starting at `start`; returns where scanning goes on.
fn split_one(line: &[u8], start: usize, args: &mut ArgTable) -> Result<usize, RespError> {
    let mut p = start;
    let mut quote = Quote::None;
    // `None` while the argument is still a plain span of `line`; `Some(scratch start)` once a quote
    // opened and the argument is being unescaped into the scratch bytes.
    let mut scratch: Option<usize> = None;
    loop {
        let c = at(line, p);
        let done = match quote {
            Quote::Double => in_double(line, &mut p, args)?,
            Quote::Single => in_single(line, &mut p, args)?,
            Quote::None => match c {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => true,
                b'"' | b'\'' => {
                    if scratch.is_none() {
                        let s = args.begin_scratch();
                        args.extend_scratch(&line[start..p]);
                        scratch = Some(s);
                    }
                    quote = if c == b'"' { Quote::Double } else { Quote::Single };
                    false
                }
                _ => {
                    if scratch.is_some() {
                        args.push_scratch_byte(c);
                    }
                    false
                }
            },
        };
        if done {
            match scratch {
                Some(s) => args.end_scratch(s),
                None => args.push_buf(start, p - start),
            }
            if p < line.len() {
                p += 1;
            }
            return Ok(p);
        }
        if p < line.len() {
            p += 1;
        }
    }
}

/// One step inside `"..."`: appends the byte(s) at `p` (advancing past an escape), or reports the
/// closing quote (`Ok(true)`).
fn in_double(line: &[u8], p: &mut usize, args: &mut ArgTable) -> Result<bool, RespError> {
    let c = at(line, *p);
    let next = at(line, *p + 1);
    if c == b'\\'
        && next == b'x'
        && at(line, *p + 2).is_ascii_hexdigit()
        && at(line, *p + 3).is_ascii_hexdigit()
    {
        args.push_scratch_byte(hex(at(line, *p + 2)) * 16 + hex(at(line, *p + 3)));
        *p += 3;
    } else if c == b'\\' && next != 0 {
        *p += 1;
        args.push_scratch_byte(match next {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'b' => 0x08,
            b'a' => 0x07,
            other => other,
        });
    } else if c == b'"' {
        return closing_quote(line, *p);
    } else if c == 0 {
        return Err(RespError::UnbalancedQuotes);
    } else {
        args.push_scratch_byte(c);
    }
    Ok(false)
}

/// One step inside `'...'`, as [`in_double`] with only the `\'` escape.
fn in_single(line: &[u8], p: &mut usize, args: &mut ArgTable) -> Result<bool, RespError> {
    let c = at(line, *p);
    if c == b'\\' && at(line, *p + 1) == b'\'' {
        *p += 1;
        args.push_scratch_byte(b'\'');
    } else if c == b'\'' {
        return closing_quote(line, *p);
    } else if c == 0 {
        return Err(RespError::UnbalancedQuotes);
    } else {
        args.push_scratch_byte(c);
    }
    Ok(false)
}

/// A closing quote must be followed by a blank or the end of the line.
fn closing_quote(line: &[u8], p: usize) -> Result<bool, RespError> {
    let after = at(line, p + 1);
    if after != 0 && !is_blank(after) {
        return Err(RespError::UnbalancedQuotes);
    }
    Ok(true)
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}
