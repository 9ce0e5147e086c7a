//! `profile`: one middleware stack driven in-process, for `cargo xtask bench profile` to run
//! under `valgrind --tool=callgrind` (instructions per request). See
//! [`bench_servers::profile`]; `profile-allocs` is the same program with a counting allocator.

fn main() -> anyhow::Result<()> {
    bench_servers::profile::main(None)
}
