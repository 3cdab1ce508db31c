/* Headers bindgen turns into Rust: SPDK's environment (DMA memory, EAL via env_dpdk, including joining
 * an EAL the process already initialised) and the userspace NVMe driver. */
#include <spdk/stdinc.h>
#include <spdk/env.h>
#include <spdk/env_dpdk.h>
#include <spdk/nvme.h>
