//! Three-way merge of TOML documents with toml_edit.

use toml_edit::{DocumentMut, Item, TableLike};

pub(super) fn merge(base: &str, target: &str, disk: &str) -> Result<String, String> {
    let parse = |what: &str, text: &str| -> Result<DocumentMut, String> {
        text.parse::<DocumentMut>().map_err(|e| format!("the {what} is not valid TOML: {e}"))
    };
    let base = parse("generated file", base)?;
    let target = parse("layer's file", target)?;
    let mut out = parse("file on disk", disk)?;
    merge_table(base.as_table(), target.as_table(), out.as_table_mut(), "")?;
    Ok(out.to_string())
}

/// The value of `item`, without formatting or comments, for comparison.
fn canonical(item: &Item) -> Option<::toml::Value> {
    let mut doc = DocumentMut::new();
    doc.insert("x", item.clone());
    let table: ::toml::Table = ::toml::from_str(&doc.to_string()).ok()?;
    table.get("x").cloned()
}

fn same(a: &Item, b: &Item) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.to_string() == b.to_string(),
    }
}

fn same_value(a: &toml_edit::Value, b: &toml_edit::Value) -> bool {
    same(&Item::Value(a.clone()), &Item::Value(b.clone()))
}

/// `v` without its surrounding whitespace, so that it takes the array's default spacing.
fn undecorated(v: &toml_edit::Value) -> toml_edit::Value {
    let mut v = v.clone();
    v.decor_mut().clear();
    v
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn conflict(path: &str, why: &str) -> String {
    format!("`{path}` {why}")
}

fn merge_table(
    base: &dyn TableLike,
    target: &dyn TableLike,
    disk: &mut dyn TableLike,
    path: &str,
) -> Result<(), String> {
    for (key, t) in target.iter() {
        let b = base.get(key);
        if b.is_some_and(|b| same(b, t)) {
            continue;
        }
        let here = join(path, key);
        if !disk.contains_key(key) {
            if b.is_some() {
                return Err(conflict(&here, "was removed from the file, and the layer changes it"));
            }
            disk.insert(key, t.clone());
            continue;
        }
        let Some(d) = disk.get_mut(key) else { continue };
        if same(d, t) {
            continue;
        }
        match b {
            None => match (t.as_array(), d.as_array_mut()) {
                // Both added a list (features): the union.
                (Some(ta), Some(da)) => {
                    for v in ta.iter() {
                        if !da.iter().any(|x| same_value(x, v)) {
                            da.push(undecorated(v));
                        }
                    }
                }
                _ => return Err(conflict(&here, "is already in the file with another value")),
            },
            Some(b) if same(d, b) => *d = t.clone(),
            Some(b) => merge_item(b, t, d, &here)?,
        }
    }
    for (key, b) in base.iter() {
        if target.contains_key(key) {
            continue;
        }
        match disk.get(key) {
            Some(d) if same(d, b) => {
                disk.remove(key);
            }
            Some(_) => return Err(conflict(&join(path, key), "was edited, and the layer removes it")),
            None => {}
        }
    }
    Ok(())
}

fn merge_item(b: &Item, t: &Item, d: &mut Item, path: &str) -> Result<(), String> {
    if let (Some(bt), Some(tt)) = (b.as_table_like(), t.as_table_like())
        && let Some(dt) = d.as_table_like_mut()
    {
        return merge_table(bt, tt, dt, path);
    }
    if let (Some(ba), Some(ta)) = (b.as_array(), t.as_array())
        && let Some(da) = d.as_array_mut()
    {
        // Arrays (features, members) as sets: the layer's additions and removals.
        for v in ta.iter() {
            if !ba.iter().any(|x| same_value(x, v)) && !da.iter().any(|x| same_value(x, v)) {
                da.push(undecorated(v));
            }
        }
        // Keep what the layer does not remove.
        da.retain(|x| !ba.iter().any(|y| same_value(x, y)) || ta.iter().any(|y| same_value(x, y)));
        return Ok(());
    }
    Err(conflict(path, "was edited, and the layer changes it too"))
}

#[cfg(test)]
mod tests {
    use super::merge;

    const BASE: &str = r#"[package]
name = "svc"

[dependencies]
microframework = { path = "/fw", default-features = false }
tokio = "1"

[dev-dependencies]
tempfile = "3"
"#;

    const TARGET: &str = r#"[package]
name = "svc"

[dependencies]
microframework = { path = "/fw", default-features = false, features = ["postgres"] }
tokio = "1"
sqlx = { version = "0.9", features = ["postgres"] }

[dev-dependencies]
tempfile = "3"
"#;

    #[test]
    fn an_untouched_file_becomes_the_target() {
        assert_eq!(merge(BASE, TARGET, BASE).unwrap(), TARGET);
    }

    #[test]
    fn user_edits_and_comments_survive() {
        let disk = BASE
            .replace("tokio = \"1\"", "# the runtime\ntokio = { version = \"1\", features = [\"full\"] }")
            .replace("tempfile = \"3\"", "tempfile = \"3\"\nproptest = \"1\"");
        let merged = merge(BASE, TARGET, &disk).unwrap();
        assert!(merged.contains("# the runtime\ntokio = { version = \"1\", features = [\"full\"] }"), "{merged}");
        assert!(merged.contains("proptest = \"1\""), "{merged}");
        assert!(merged.contains(r#"features = ["postgres"] }"#), "{merged}");
        assert!(merged.contains("sqlx = "), "{merged}");
    }

    #[test]
    fn an_edited_inline_table_is_merged_key_by_key() {
        let disk = BASE.replace("default-features = false }", "default-features = false, features = [\"otel\"] }");
        let merged = merge(BASE, TARGET, &disk).unwrap();
        assert!(merged.contains(r#"features = ["otel", "postgres"]"#), "{merged}");
    }

    #[test]
    fn a_value_both_changed_is_a_conflict() {
        let disk = BASE.replace("path = \"/fw\"", "path = \"/elsewhere\"");
        let target = TARGET.replace("path = \"/fw\"", "path = \"/new\"");
        let e = merge(BASE, &target, &disk).unwrap_err();
        assert!(e.contains("dependencies.microframework.path"), "{e}");
    }
}
