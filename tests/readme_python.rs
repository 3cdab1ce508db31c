//! The README's Python examples of the binary protocol, run as written (only the port changed)
//! against a real `vigil serve` whose `[auth]` has the principal the signed example names: the
//! anonymous SET and GET, the signed SET and GET (keyed BLAKE3 from the `blake3` PyPI package),
//! and the same signed call under a wrong key, refused `AUTH_FAILED` `bad_mac`. So the README's
//! byte layouts cannot drift from the server's.
//!
//! Needs a Python with `blake3` (scripts/test installs it into target/py; or set VIGIL_PYTHON):
//! the test fails, loudly, without one.

mod common;

use std::process::Command;

/// The README's ```python blocks.
fn python_blocks(readme: &str) -> Vec<&str> {
    readme.split("```python\n").skip(1).map(|b| b.split("```").next().unwrap()).collect()
}

/// The text after `prefix` in `block`, up to `end`.
fn after<'a>(block: &'a str, prefix: &str, end: char) -> &'a str {
    let rest = block.split(prefix).nth(1).unwrap_or_else(|| panic!("the example has no {prefix:?}"));
    rest.split(end).next().unwrap()
}

#[test]
fn the_readmes_python_examples_run_against_a_real_node() {
    let readme = include_str!("../README.md");
    let blocks = python_blocks(readme);
    let anonymous = blocks.iter().find(|b| b.contains("def call(")).expect("the README's anonymous example");
    let signed = blocks.iter().find(|b| b.contains("def signed_call(")).expect("the README's signed example");
    let key = after(signed, "bytes.fromhex('", '\'');
    let key_id = after(signed, "KEY_ID, KEY = ", ',');
    let client_id = after(signed, "CLIENT_ID = ", ' ');
    assert_eq!(key.len(), 64);

    let dir = common::disk_temp_dir("readme-python");
    let port = common::free_udp_port();
    let config = format!(
        "{}\n[[auth.clients]]\nname = \"readme\"\nkey_id = {key_id}\nclient_id = {client_id}\nkey = \"{key}\"\nacl = \"+@read +@write\"\n",
        common::dev_config(port)
    );
    let server = common::Server::start(&dir, &config);
    let to = "('127.0.0.1', 9000)";
    assert!(anonymous.contains(to) && signed.contains(to), "the examples send to {to}");
    let script = format!(
        "{}\n{}\nKEY = bytes(32)  # the wrong key\nprint(signed_call(0x10, 3, b'hello'))\n",
        anonymous.replace(to, &format!("('127.0.0.1', {port})")),
        signed.replace(to, &format!("('127.0.0.1', {port})"))
    );
    let out = Command::new(common::python_with("blake3")).args(["-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (i, line) in lines[..4].iter().enumerate() {
        assert!(line.starts_with("(0, b'"), "call {i} answered OK: {stdout}");
    }
    assert!(lines[1].ends_with("world')") && lines[3].ends_with("world')"), "GETs read the value: {stdout}");
    assert_eq!(lines[4], r"(22, b'\x03')", "AUTH_FAILED, bad_mac (3)");
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
