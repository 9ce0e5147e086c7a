//! Three-way structural merges for `add`: the layer's change to a file (from `base`, the file as
//! the service's options render it, to `target`, as they render it with the layer) is applied to
//! the file on disk, which the user may have edited.
//!
//! `Cargo.toml` is merged with toml_edit, table by table (string arrays as sets), keeping the
//! user's comments, formatting and order. YAML files (config, Compose, Kubernetes manifests, Helm
//! values) are merged by block mappings: an entry the layer adds is inserted after its neighbour,
//! an entry it changes is replaced when the user left it alone and merged key by key when both
//! are mappings; sequences of mappings are matched by their `name`. Comments stay where they are.
//! Anything else (a value both sides changed, an entry the user deleted, a file of another kind)
//! is a conflict, and `add` leaves the file alone.

mod toml;
mod yaml;

/// Merges the change `base` → `target` into `disk`. `Err` names what conflicts.
pub(crate) fn merge(path: &str, base: &str, target: &str, disk: &str) -> Result<String, String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".toml") {
        toml::merge(base, target, disk)
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        yaml::merge(base, target, disk)
    } else {
        Err("no structural merge for this kind of file".into())
    }
}
