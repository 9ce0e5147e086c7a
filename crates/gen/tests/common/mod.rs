//! Helpers shared by the generator's integration tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use microframework_gen::{Options, render, write_new};

/// Every file under `dir`, by relative `/`-separated path.
pub(crate) fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The service `opts` renders, written to `svc/` in a temporary directory (kept alive by the
/// returned guard).
pub(crate) fn generated(opts: &Options) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("svc");
    write_new(&render(opts).unwrap(), &dir, false).unwrap();
    (tmp, dir)
}
