//! Build script for `dpdk-sys`: finds DPDK through `pkg-config`, generates bindings with bindgen into
//! `OUT_DIR`, compiles `shim.c`, and tells cargo how to link.
//!
//! The raw `pkg-config --cflags libdpdk` output is used on purpose: the `pkg-config` crate drops
//! `-include rte_config.h` and `-march=...`, without which the headers describe a different ABI
//! (and `shim.c`'s inlined fast paths would not match the library).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Vec<String> {
    let out = Command::new("pkg-config").args(args).output().unwrap_or_else(|e| {
        panic!(
            "dpdk-sys: cannot run `pkg-config` ({e}). Install DPDK's development files with \
             `apt-get install libdpdk-dev pkg-config`, or build without DPDK using \
             `--no-default-features`."
        )
    });
    if !out.status.success() {
        panic!(
            "dpdk-sys: `pkg-config {}` failed: {}\nDPDK (libdpdk) was not found. Install it with \
             `apt-get install libdpdk-dev pkg-config`, or build without DPDK using \
             `--no-default-features`.",
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
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let cflags = pkg_config(&["--cflags", "libdpdk"]);
    let libs = pkg_config(&["--libs", "libdpdk"]);
    let version = pkg_config(&["--modversion", "libdpdk"]);
    if let Some(v) = version.first() {
        // Dependents (links = "dpdk") see it as DEP_DPDK_VERSION.
        println!("cargo:version={v}");
    }

    // Link directives: shared linking; PMDs are plugins EAL loads from Debian's plugin directory.
    for tok in &libs {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
        // -Wl,--as-needed and similar linker flags: rustc's linker already uses --as-needed.
    }

    let mut shim = cc::Build::new();
    shim.file("shim.c").warnings(false).opt_level(2);
    for f in &cflags {
        shim.flag(f);
    }
    shim.compile("vigil_dpdk_shim");

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_thread_register")
        .allowlist_function("rte_thread_unregister")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_log_set_global_level")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_mempool")
        .allowlist_type("rte_eth_.*")
        .allowlist_type("rte_ether_addr")
        .allowlist_type("vigil_rte_consts")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MAX_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_ETHER_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("VIGIL_RTE_.*")
        .prepend_enum_name(false)
        .derive_default(true)
        // Layout checks are compile-time assertions in bindgen 0.71: a struct bindgen got wrong
        // (packed/aligned DPDK types) fails the build instead of corrupting mbufs at run time.
        .layout_tests(true)
        .wrap_unsafe_ops(true)
        .generate()
        .expect("bindgen failed on wrapper.h (are libclang and libdpdk-dev installed?)");
    bindings.write_to_file(out_dir.join("bindings.rs")).expect("cannot write bindings.rs");
}
