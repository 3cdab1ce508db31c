/* Headers bindgen turns into Rust: SPDK's environment (DMA memory, EAL via env_dpdk) and the
 * userspace NVMe driver. */
#include <spdk/stdinc.h>
#include <spdk/env.h>
#include <spdk/nvme.h>
