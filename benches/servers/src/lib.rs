//! The benchmark servers live in `src/bin/`; this library is empty on purpose (a package needs a
//! target, and keeping the binaries together lets one cargo invocation build both).
