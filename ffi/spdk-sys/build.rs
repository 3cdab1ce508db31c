//! Build script for `spdk-sys`: finds SPDK through `pkg-config`, generates bindings with bindgen into
//! `OUT_DIR`, and links SPDK the way that works with rust-lld's `--as-needed` default.
//!
//! SPDK's shared objects do not name their DPDK dependencies, so plain dylib linking fails
//! (undefined `io_uring_*` at link time, `per_lcore__rte_errno` at run time). What works: every
//! `-lspdk_*` as a whole-archive static library (its constructors register subsystems and
//! transports, so nothing may be dropped), every other `-l` as a dylib, from
//! `pkg-config --libs spdk_nvme spdk_env_dpdk` plus `pkg-config --libs --static spdk_syslibs`.
//! This crate is only built under vigil-pmd's `spdk` feature.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const HELP: &str = "SPDK was not found by pkg-config (spdk_nvme.pc, spdk_env_dpdk.pc, spdk_syslibs.pc). \
SPDK is in no package registry: build and install it from source (v24.01 against the system DPDK, \
e.g. `./configure --with-dpdk=/usr --without-isal --without-crypto`, with its DPDK patch-level check relaxed, then `make install`) and \
put its pkgconfig directory on PKG_CONFIG_PATH, or build without the `spdk` feature.";

fn pkg_config(args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config").args(args).output().unwrap_or_else(|e| {
        panic!("spdk-sys: cannot run `pkg-config` ({e}); `apt-get install pkg-config`. {HELP}")
    });
    if !out.status.success() {
        panic!(
            "spdk-sys: `pkg-config {}` failed: {}\n{HELP}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let cflags = pkg_config(&["--cflags", "spdk_nvme", "spdk_env_dpdk"]);
    let mut libs = pkg_config(&["--libs", "spdk_nvme", "spdk_env_dpdk"]);
    libs.extend(pkg_config(&["--libs", "--static", "spdk_syslibs"]));

    let mut seen = std::collections::HashSet::new();
    for tok in &libs {
        if !seen.insert(tok.clone()) {
            continue;
        }
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            if lib.starts_with("spdk_") {
                println!("cargo:rustc-link-lib=static:+whole-archive={lib}");
            } else {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
        }
    }

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("spdk_env_.*")
        .allowlist_function("spdk_nvme_.*")
        .allowlist_function("spdk_dma_.*")
        .allowlist_function("spdk_zmalloc")
        .allowlist_function("spdk_free")
        .allowlist_function("spdk_strerror")
        .allowlist_type("spdk_env_opts")
        .allowlist_type("spdk_nvme_.*")
        .allowlist_var("SPDK_ENV_.*")
        .allowlist_var("SPDK_NVME_.*")
        .allowlist_var("SPDK_MALLOC_.*")
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        .wrap_unsafe_ops(true)
        .generate()
        .expect("bindgen failed on wrapper.h (is libclang installed?)")
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("cannot write bindings.rs");
}
