//! `add` as a library: the central property (`new --with-F=P` equals `new` followed by
//! `add F --provider P`, file for file and manifest included) for every type, feature and
//! provider, and what happens to files the user edited.

use std::path::{Path, PathBuf};

use microframework_gen::{
    AddAction, AuthKind, DatabaseKind, FEATURE_LAYERS, FrameworkSource, GenError, MANIFEST_FILE, Options, ServiceType,
    apply_add, plan_add, render,
};

mod common;
use common::{generated, tree};

fn options(service_type: ServiceType, database: DatabaseKind, auth: AuthKind) -> Options {
    Options { service_type, database, auth, ..Options::new("svc-layers", FrameworkSource::Version("0.1".into())) }
}

fn add(dir: &Path, feature: &str, provider: &str) -> Vec<PathBuf> {
    let plan = plan_add(dir, feature, Some(provider), false).unwrap();
    assert_eq!(plan.conflicts().count(), 0, "a pristine service merges without conflicts");
    apply_add(&plan).unwrap()
}

fn assert_same_tree(got: &Path, want: &Options, what: &str) {
    let (_tmp, expected) = generated(want);
    let (got, expected) = (tree(got), tree(&expected));
    let got_paths: Vec<_> = got.keys().collect();
    let want_paths: Vec<_> = expected.keys().collect();
    assert_eq!(got_paths, want_paths, "{what}: the same files");
    for (path, contents) in &expected {
        assert!(
            got[path] == *contents,
            "{what}: {path} differs from `new`'s\n--- add\n{}\n--- new\n{contents}",
            got[path]
        );
    }
}

#[test]
fn new_with_a_layer_equals_new_then_add_for_every_type_feature_and_provider() {
    for t in ServiceType::available() {
        for feature in FEATURE_LAYERS {
            for provider in feature.providers {
                // The service without the feature; for auth, the default database.
                let without = match feature.name {
                    "database" => options(t, DatabaseKind::None, AuthKind::None),
                    _ => options(t, DatabaseKind::Sqlite, AuthKind::None),
                };
                assert_eq!(without.provider_of(feature.name), None);
                let with = without.with_layer(feature.name, provider.name).unwrap();
                let (_tmp, dir) = generated(&without);
                add(&dir, feature.name, provider.name);
                assert_same_tree(&dir, &with, &format!("{t} + {} {}", feature.name, provider.name));
            }
        }
    }
}

#[test]
fn layers_compose_in_either_order_and_are_recorded() {
    let want = options(ServiceType::Rest, DatabaseKind::Postgres, AuthKind::Jwt);
    for order in [["database", "auth"], ["auth", "database"]] {
        let (_tmp, dir) = generated(&options(ServiceType::Rest, DatabaseKind::None, AuthKind::None));
        for feature in order {
            add(&dir, feature, if feature == "database" { "postgres" } else { "jwt" });
        }
        assert_same_tree(&dir, &want, &format!("{order:?}"));
        let manifest = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        let layers = manifest.find("[[layers]]\nfeature = \"database\"\nprovider = \"postgres\"").unwrap();
        assert!(manifest[layers..].contains("[[layers]]\nfeature = \"auth\"\nprovider = \"jwt\""), "{manifest}");
    }
}

#[test]
fn adding_twice_changes_nothing() {
    let (_tmp, dir) = generated(&options(ServiceType::Grpc, DatabaseKind::None, AuthKind::None));
    add(&dir, "database", "mysql");
    let before = tree(&dir);
    let plan = plan_add(&dir, "database", Some("mysql"), false).unwrap();
    assert!(plan.already_applied);
    assert!(plan.changes.is_empty());
    assert!(apply_add(&plan).unwrap().is_empty());
    assert_eq!(tree(&dir), before);
}

#[test]
fn the_structural_merge_of_an_untouched_or_edited_file_is_the_target_plus_the_edit() {
    // Every YAML and TOML file a layer changes, merged as if the user had appended to it.
    let edit_yaml = "# kept by add\nuser_added_key: true\n";
    let edit_toml = "\n# kept by add\n[features]\nuser-added = []\n";
    for t in ServiceType::available() {
        let without = options(t, DatabaseKind::None, AuthKind::None);
        for (feature, provider) in [("database", "postgres"), ("database", "sqlite"), ("auth", "jwt")] {
            let with = without.with_layer(feature, provider).unwrap();
            let (_tmp, dir) = generated(&without);
            let base = render(&without).unwrap();
            let target = render(&with).unwrap();
            let mut edited = Vec::new();
            for file in &target.files {
                let path = file.path.to_string_lossy().to_string();
                let Some(b) = base.file(&path) else { continue };
                let edit = if path.ends_with(".yaml") || path.ends_with(".yml") {
                    edit_yaml
                } else if path.ends_with(".toml") {
                    edit_toml
                } else {
                    continue;
                };
                if b.contents == file.contents {
                    continue;
                }
                std::fs::write(dir.join(&path), format!("{}{edit}", b.contents)).unwrap();
                edited.push((path, format!("{}{edit}", file.contents)));
            }
            assert!(!edited.is_empty());
            let plan = plan_add(&dir, feature, Some(provider), false);
            let plan = match plan {
                Ok(p) => p,
                Err(e) => panic!("{t}: {e}"),
            };
            let conflicts: Vec<_> = plan.conflicts().map(|c| (c.path.clone(), c.reason.clone())).collect();
            assert!(conflicts.is_empty(), "{t}: {conflicts:?}");
            apply_add(&plan).unwrap();
            for (path, want) in edited {
                let action = plan.changes.iter().find(|c| c.path == Path::new(&path)).map(|c| c.action);
                assert_eq!(action, Some(AddAction::Merge), "{t} {path}");
                let got = std::fs::read_to_string(dir.join(&path)).unwrap();
                assert!(got == want, "{t} {path}: merged\n{got}\nwanted\n{want}");
            }
        }
    }
}

#[test]
fn an_edited_rust_file_is_left_alone_and_the_layers_version_goes_beside_it() {
    let (_tmp, dir) = generated(&options(ServiceType::Rest, DatabaseKind::None, AuthKind::None));
    let lib = dir.join("src/lib.rs");
    let mine = format!("{}\n// my change\n", std::fs::read_to_string(&lib).unwrap());
    std::fs::write(&lib, &mine).unwrap();
    let plan = plan_add(&dir, "database", Some("sqlite"), false).unwrap();
    let conflict = plan.conflicts().find(|c| c.path == Path::new("src/lib.rs")).expect("src/lib.rs conflicts");
    assert!(conflict.reason.as_deref().unwrap().contains("no structural merge"), "{:?}", conflict.reason);
    let written = apply_add(&plan).unwrap();
    assert!(written.contains(&PathBuf::from("src/lib.rs.new")), "{written:?}");
    assert_eq!(std::fs::read_to_string(&lib).unwrap(), mine);
    let with = options(ServiceType::Rest, DatabaseKind::Sqlite, AuthKind::None);
    assert_eq!(
        std::fs::read_to_string(dir.join("src/lib.rs.new")).unwrap(),
        render(&with).unwrap().file("src/lib.rs").unwrap().contents
    );

    // --force overwrites instead.
    let (_tmp2, dir) = generated(&options(ServiceType::Rest, DatabaseKind::None, AuthKind::None));
    std::fs::write(dir.join("src/lib.rs"), &mine).unwrap();
    let plan = plan_add(&dir, "database", Some("sqlite"), true).unwrap();
    assert_eq!(plan.conflicts().count(), 0);
    assert!(plan.changes.iter().any(|c| c.path == Path::new("src/lib.rs") && c.action == AddAction::Overwrite));
    apply_add(&plan).unwrap();
    assert_same_tree(&dir, &with, "forced");
}

#[test]
fn bad_requests_are_refused_with_nothing_written() {
    let (_tmp, dir) = generated(&options(ServiceType::Rest, DatabaseKind::Sqlite, AuthKind::None));
    let before = tree(&dir);
    let err = |feature: &str, provider: Option<&str>| plan_add(&dir, feature, provider, false).unwrap_err();
    let e = err("database", Some("postgres"));
    assert!(matches!(e, GenError::LayerConflict(_)), "{e}");
    assert!(e.to_string().contains("already has the database layer with provider `sqlite`"), "{e}");
    assert!(err("queue", None).to_string().contains("unknown feature `queue`"));
    assert!(err("auth", Some("oauth")).to_string().contains("unknown provider `oauth` for the auth feature"));
    let not_a_service = tempfile::tempdir().unwrap();
    let e = plan_add(not_a_service.path(), "auth", None, false).unwrap_err();
    assert!(matches!(e, GenError::NotAService(_)), "{e}");
    let manifest = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
    let newer = manifest
        .replace(concat!("generator_version = \"", env!("CARGO_PKG_VERSION"), "\""), "generator_version = \"99.0.0\"");
    std::fs::write(dir.join(MANIFEST_FILE), &newer).unwrap();
    assert!(matches!(err("auth", None), GenError::NewerManifest { .. }));
    std::fs::write(dir.join(MANIFEST_FILE), &manifest).unwrap();
    assert_eq!(tree(&dir), before);
}
