//! The services under examples/ are generator output: regenerating them from their manifest must
//! give the same bytes. On drift, regenerate with the command printed in the failure.

mod common;

use microframework_gen::{Manifest, render};

#[test]
fn examples_match_the_generator() {
    let examples = common::workspace_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join(microframework_gen::MANIFEST_FILE).is_file() {
            continue;
        }
        let manifest = Manifest::read(&dir).unwrap();
        let project = render(&manifest.options).unwrap();
        let name = &manifest.options.name;
        let regenerate = format!(
            "cargo run -p microframework-cli -- new {name} --dir examples/{name} --framework-path . --force --no-git \
             --type {} --with-database={} --with-auth={} --resource {}",
            manifest.options.service_type,
            manifest.options.database.as_str(),
            manifest.options.auth.as_str(),
            manifest.options.resource,
        );
        let mut drift = Vec::new();
        for file in &project.files {
            match std::fs::read_to_string(dir.join(&file.path)) {
                Ok(on_disk) if on_disk == file.contents => {}
                Ok(_) => drift.push(format!("{} differs", file.path.display())),
                Err(e) => drift.push(format!("{}: {e}", file.path.display())),
            }
        }
        let expected = project.manifest();
        if expected.files != manifest.files {
            drift.push(".microframework.toml lists other files or hashes".to_owned());
        }
        assert!(
            drift.is_empty(),
            "examples/{name} drifted from the generator:\n  {}\nregenerate with: {regenerate}",
            drift.join("\n  ")
        );
        checked += 1;
    }
    assert!(checked >= 1, "no generated example found under {}", examples.display());
}
