//! Build probe for the `vigil` crate: records what the host offers and embeds version information.
//!
//! Emits `VIGIL_GIT_SHA` (short commit, or "unknown" outside a git checkout), `VIGIL_DPDK_VERSION`
//! (from `pkg-config --modversion libdpdk`, or "none") and `VIGIL_SPDK_VERSION` for `vigil --version`.
//! Linking against DPDK and SPDK is the business of `ffi/dpdk-sys` and `ffi/spdk-sys`; this script only
//! reports.

use std::process::Command;

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let sha = command_output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dpdk = command_output("pkg-config", &["--modversion", "libdpdk"]).unwrap_or_else(|| "none".into());
    let spdk = command_output("pkg-config", &["--modversion", "spdk_nvme"]).unwrap_or_else(|| "none".into());
    println!("cargo:rustc-env=VIGIL_GIT_SHA={sha}");
    println!("cargo:rustc-env=VIGIL_DPDK_VERSION={dpdk}");
    println!("cargo:rustc-env=VIGIL_SPDK_VERSION={spdk}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
}
