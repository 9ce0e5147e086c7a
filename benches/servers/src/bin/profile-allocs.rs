//! `profile-allocs`: the `profile` program with a counting global allocator (`stats_alloc`'s
//! wrapper of the system allocator), for `cargo xtask bench profile` to report allocations per
//! request. The counting is kept out of `profile` so that its instruction counts include no
//! counter updates.

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn snapshot() -> bench_servers::profile::AllocStats {
    let s = GLOBAL.stats();
    bench_servers::profile::AllocStats {
        allocations: s.allocations as u64,
        reallocations: s.reallocations as u64,
        bytes: s.bytes_allocated as u64,
    }
}

fn main() -> anyhow::Result<()> {
    bench_servers::profile::main(Some(snapshot))
}
