//! Raw SPDK bindings (environment and userspace NVMe driver): bindgen output over `wrapper.h`,
//! generated into `OUT_DIR` and never checked in.
//!
//! Only built under vigil-pmd's `spdk` feature, on hosts where SPDK is installed (it is in no
//! package registry; see `build.rs` for what to install and why SPDK is linked as whole-archive
//! static libraries). Everything here is `unsafe` and mirrors the C API one to one. Let bindgen's
//! `spdk_env_opts` be the only definition of that struct: its size changes between SPDK releases,
//! so always initialise it with `spdk_env_opts_init`.

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    rustdoc::all,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;
