//! `COMMAND`, `COMMAND COUNT`, `COMMAND INFO` and `COMMAND DOCS` written from the static table, in
//! Redis 7's shapes (checked against redis-server 7.0 replies): redis-cli reads `COMMAND DOCS` at
//! start for its hints and `help`, and cluster-aware clients read `COMMAND` for key positions.
//!
//! Invariants: allocation-free (two passes over the names where a length must come first); a name
//! Vigil does not have is `null` in `COMMAND INFO` and left out of `COMMAND DOCS`, as in Redis.

use super::args::ArgList;
use super::options::Introspect;
use super::reply::ReplyWriter;
use super::table::{self, ArgDoc, CommandSpec, KeySpec, COMMANDS};

/// Writes the reply to a parsed `COMMAND ...`.
pub fn write_introspect(w: &mut ReplyWriter<'_>, what: Introspect<'_>) {
    match what {
        Introspect::Count => w.integer(COMMANDS.len() as i64),
        Introspect::List => write_all_info(w),
        Introspect::Info(names) if names.is_empty() => write_all_info(w),
        Introspect::Info(names) => {
            w.array(names.len());
            for name in names.iter() {
                match lookup_full(name) {
                    Some(spec) => write_info(w, spec),
                    None => w.null(),
                }
            }
        }
        Introspect::Docs(names) if names.is_empty() => {
            w.map(COMMANDS.len());
            for spec in COMMANDS {
                w.bulk(spec.name.as_bytes());
                write_docs(w, spec);
            }
        }
        Introspect::Docs(names) => write_some_docs(w, names),
        Introspect::Help(container) => write_help(w, container),
    }
}

/// `<CONTAINER> HELP`: as Redis's `addReplyHelp`, an array of simple strings: a first line, then
/// each subcommand's name and its summary (indented), ending with HELP itself. Written from stack
/// buffers: names and summaries are short static text.
fn write_help(w: &mut ReplyWriter<'_>, container: &str) {
    let Some(spec) = table::lookup(container.as_bytes()) else {
        w.array(0);
        return;
    };
    let mut line = [0u8; 160];
    let subs = || spec.subcommands.iter().filter(|s| s.short_name() != "help");
    w.array(3 + 2 * subs().count());
    let len = uppercase_into(spec.name, &mut line);
    let tail = b" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:";
    line[len..len + tail.len()].copy_from_slice(tail);
    w.simple(&line[..len + tail.len()]);
    for sub in subs() {
        let len = uppercase_into(sub.short_name(), &mut line);
        w.simple(&line[..len]);
        write_indented(w, sub.summary);
    }
    w.simple(b"HELP");
    write_indented(w, "Print this help.");
}

fn write_indented(w: &mut ReplyWriter<'_>, text: &str) {
    let mut line = [b' '; 160];
    let len = text.len().min(line.len() - 4);
    line[4..4 + len].copy_from_slice(&text.as_bytes()[..len]);
    w.simple(&line[..4 + len]);
}

/// Writes `name` in capitals at the start of `buf`; returns its length (names are short ASCII).
fn uppercase_into(name: &str, buf: &mut [u8; 160]) -> usize {
    let len = name.len().min(64);
    for (dst, src) in buf.iter_mut().zip(name.bytes().take(len)) {
        *dst = src.to_ascii_uppercase();
    }
    len
}

/// A command by its full name (`get`, `config|get`), any case.
pub fn lookup_full(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => table::lookup_sub(table::lookup(&name[..bar])?, &name[bar + 1..]),
        None => table::lookup(name),
    }
}

fn write_all_info(w: &mut ReplyWriter<'_>) {
    w.array(COMMANDS.len());
    for spec in COMMANDS {
        write_info(w, spec);
    }
}

fn write_some_docs(w: &mut ReplyWriter<'_>, names: ArgList<'_>) {
    w.map(names.iter().filter(|n| lookup_full(n).is_some()).count());
    for name in names.iter() {
        if let Some(spec) = lookup_full(name) {
            w.bulk(spec.name.as_bytes());
            write_docs(w, spec);
        }
    }
}

fn write_simple_set(w: &mut ReplyWriter<'_>, items: &[&str]) {
    w.set(items.len());
    for item in items {
        w.simple(item.as_bytes());
    }
}

/// One command's `COMMAND INFO` entry: the ten fields of Redis 7.
fn write_info(w: &mut ReplyWriter<'_>, spec: &CommandSpec) {
    w.array(10);
    w.bulk(spec.name.as_bytes());
    w.integer(spec.arity);
    write_simple_set(w, spec.flags);
    w.integer(spec.first_key);
    w.integer(spec.last_key);
    w.integer(spec.key_step);
    write_simple_set(w, spec.acl_categories);
    w.set(0); // tips
    w.set(spec.key_specs.len());
    for key_spec in spec.key_specs {
        write_key_spec(w, key_spec);
    }
    if spec.subcommands.is_empty() {
        w.set(0);
    } else {
        w.array(spec.subcommands.len());
        for sub in spec.subcommands {
            write_info(w, sub);
        }
    }
}

fn write_key_spec(w: &mut ReplyWriter<'_>, key_spec: &KeySpec) {
    w.map(3);
    w.bulk(b"flags");
    write_simple_set(w, key_spec.flags);
    w.bulk(b"begin_search");
    w.map(2);
    w.bulk(b"type");
    w.bulk(b"index");
    w.bulk(b"spec");
    w.map(1);
    w.bulk(b"index");
    w.integer(key_spec.begin_index);
    w.bulk(b"find_keys");
    w.map(2);
    w.bulk(b"type");
    w.bulk(b"range");
    w.bulk(b"spec");
    w.map(3);
    w.bulk(b"lastkey");
    w.integer(key_spec.last_key);
    w.bulk(b"keystep");
    w.integer(key_spec.key_step);
    w.bulk(b"limit");
    w.integer(0);
}

/// One command's `COMMAND DOCS` map: summary, since, group, complexity, then arguments or
/// subcommands when it has them.
fn write_docs(w: &mut ReplyWriter<'_>, spec: &CommandSpec) {
    let fields = 4 + usize::from(!spec.args.is_empty()) + usize::from(!spec.subcommands.is_empty());
    w.map(fields);
    for (name, value) in [
        ("summary", spec.summary),
        ("since", spec.since),
        ("group", spec.group),
        ("complexity", spec.complexity),
    ] {
        w.bulk(name.as_bytes());
        w.bulk(value.as_bytes());
    }
    if !spec.args.is_empty() {
        w.bulk(b"arguments");
        write_arg_docs(w, spec.args);
    }
    if !spec.subcommands.is_empty() {
        w.bulk(b"subcommands");
        w.map(spec.subcommands.len());
        for sub in spec.subcommands {
            w.bulk(sub.name.as_bytes());
            write_docs(w, sub);
        }
    }
}

fn write_arg_docs(w: &mut ReplyWriter<'_>, args: &[ArgDoc]) {
    w.array(args.len());
    for arg in args {
        let flags = usize::from(arg.optional) + usize::from(arg.multiple);
        let fields = 2
            + usize::from(arg.key_spec_index.is_some())
            + usize::from(arg.token.is_some())
            + usize::from(arg.since.is_some())
            + usize::from(flags > 0)
            + usize::from(!arg.args.is_empty());
        w.map(fields);
        w.bulk(b"name");
        w.bulk(arg.name.as_bytes());
        w.bulk(b"type");
        w.bulk(arg.kind.name().as_bytes());
        if let Some(index) = arg.key_spec_index {
            w.bulk(b"key_spec_index");
            w.integer(i64::from(index));
        }
        if let Some(token) = arg.token {
            w.bulk(b"token");
            w.bulk(token.as_bytes());
        }
        if let Some(since) = arg.since {
            w.bulk(b"since");
            w.bulk(since.as_bytes());
        }
        if flags > 0 {
            w.bulk(b"flags");
            w.set(flags);
            if arg.optional {
                w.simple(b"optional");
            }
            if arg.multiple {
                w.simple(b"multiple");
            }
        }
        if !arg.args.is_empty() {
            w.bulk(b"arguments");
            write_arg_docs(w, arg.args);
        }
    }
}
