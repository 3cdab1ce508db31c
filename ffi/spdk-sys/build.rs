//! Build script for `spdk-sys`: finds SPDK through `pkg-config`, generates bindings with bindgen into
//! `OUT_DIR`, and links SPDK the way that works with rust-lld's `--as-needed` default.
//!
//! SPDK's shared objects do not name their DPDK dependencies, so plain dylib linking fails
//! (undefined `io_uring_*` at link time, `per_lcore__rte_errno` at run time). What works: every
//! `-lspdk_*` as a whole-archive static library (its constructors register subsystems and
//! transports, so nothing may be dropped), every other `-l` as a dylib, from
//! `pkg-config --libs spdk_nvme spdk_env_dpdk` plus `pkg-config --libs --static spdk_syslibs`.
//! This crate is only built under vigil-pmd's `spdk` feature.
//!
//! Check-only fallback: where pkg-config has no SPDK but `SPDK_INCLUDE_DIR` names a directory holding
//! SPDK's `spdk/*.h` headers (e.g. `include/` of an SPDK v24.01 source tree), bindings are generated
//! from those headers and no link directives are emitted. That is enough for `cargo check` and
//! `cargo clippy` of vigil-pmd's SPDK backend; building or running anything that links fails.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const HELP: &str = "SPDK was not found by pkg-config (spdk_nvme.pc, spdk_env_dpdk.pc, spdk_syslibs.pc). \
SPDK is in no package registry: build and install it from source (v24.01 against the system DPDK, \
e.g. `./configure --with-dpdk=/usr --without-isal --without-crypto`, with its DPDK patch-level check relaxed, then `make install`) and \
put its pkgconfig directory on PKG_CONFIG_PATH, or build without the `spdk` feature. \
(To type-check only, without SPDK installed: SPDK_INCLUDE_DIR=<spdk source>/include cargo check ...)";

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

    println!("cargo:rerun-if-env-changed=SPDK_INCLUDE_DIR");

    let installed = Command::new("pkg-config")
        .args(["--exists", "spdk_nvme", "spdk_env_dpdk"])
        .status()
        .is_ok_and(|s| s.success());
    let include_dir = env::var_os("SPDK_INCLUDE_DIR").map(PathBuf::from);
    let (cflags, libs) = match include_dir {
        Some(dir) if !installed => {
            println!(
                "cargo:warning=spdk-sys: no SPDK from pkg-config; bindings from headers in {} \
                 (SPDK_INCLUDE_DIR): check only, nothing will link",
                dir.display()
            );
            (vec![format!("-I{}", dir.display())], Vec::new())
        }
        _ => {
            let cflags = pkg_config(&["--cflags", "spdk_nvme", "spdk_env_dpdk"]);
            let mut libs = pkg_config(&["--libs", "spdk_nvme", "spdk_env_dpdk"]);
            libs.extend(pkg_config(&["--libs", "--static", "spdk_syslibs"]));
            (cflags, libs)
        }
    };

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
        // Packed structs that contain aligned bitfield unions, which Rust rejects (E0588). Nothing
        // here reads their fields, so they become opaque byte blobs of the right size and alignment.
        .opaque_type("spdk_nvme_ctrlr_data")
        .opaque_type("spdk_nvme_tcp_cmd")
        .opaque_type("spdk_nvme_tcp_rsp")
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        .wrap_unsafe_ops(true)
        .generate()
        .expect("bindgen failed on wrapper.h (is libclang installed?)")
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("cannot write bindings.rs");
}
