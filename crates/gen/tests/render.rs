//! Rendering: every variant renders, is deterministic, and matches its snapshot.

use std::path::PathBuf;

use microframework_gen::{AuthKind, DatabaseKind, FrameworkSource, Options, Policy, ServiceType, render};

fn options(db: DatabaseKind, auth: AuthKind) -> Options {
    let mut o = Options::new("user-service", FrameworkSource::Path(PathBuf::from("../framework")));
    o.database = db;
    o.auth = auth;
    o
}

fn variants() -> Vec<(String, Options)> {
    let mut out = Vec::new();
    for db in DatabaseKind::ALL {
        for auth in AuthKind::ALL {
            out.push((format!("{}-{}", db.as_str(), auth.as_str()), options(db, auth)));
        }
    }
    // Each protocol type once with a database and auth, and once on the in-memory store.
    for ty in [ServiceType::Grpc, ServiceType::Graphql, ServiceType::Websocket] {
        for (db, auth) in [(DatabaseKind::Postgres, AuthKind::Jwt), (DatabaseKind::None, AuthKind::None)] {
            let mut o = options(db, auth);
            o.service_type = ty;
            out.push((format!("{}-{}-{}", ty.as_str(), db.as_str(), auth.as_str()), o));
        }
    }
    out
}

fn flatten(project: &microframework_gen::Project) -> String {
    let mut out = String::new();
    for f in &project.files {
        out.push_str(&format!(
            "===== {} ({:?}{}) =====\n",
            f.path.display(),
            f.policy,
            if f.executable { ", executable" } else { "" }
        ));
        out.push_str(&f.contents);
        if !f.contents.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_variant_matches_its_snapshot() {
    for (name, opts) in variants() {
        let project = render(&opts).unwrap();
        insta::assert_snapshot!(name, flatten(&project));
    }
}

#[test]
fn output_is_deterministic() {
    let opts = options(DatabaseKind::Postgres, AuthKind::Jwt);
    assert_eq!(flatten(&render(&opts).unwrap()), flatten(&render(&opts).unwrap()));
}

#[test]
fn database_specific_files_follow_the_flag() {
    let sqlite = render(&options(DatabaseKind::Sqlite, AuthKind::None)).unwrap();
    assert!(sqlite.file("migrations/sqlite/0001_create_users.sql").is_some());
    assert!(sqlite.file("migrations/postgres/0001_create_users.sql").is_none());
    let none = render(&options(DatabaseKind::None, AuthKind::None)).unwrap();
    assert!(none.files.iter().all(|f| !f.path.starts_with("migrations")));
    assert!(!none.file("Cargo.toml").unwrap().contents.contains("sqlx"));
    let jwt = render(&options(DatabaseKind::Postgres, AuthKind::Jwt)).unwrap();
    assert!(jwt.file("src/handlers/users.rs").unwrap().contents.contains("_claims: Claims"));
    assert!(jwt.file("configs/config.prod.yaml").unwrap().contents.contains("${JWT_SECRET}"));
}

#[test]
fn custom_resource_names_flow_through() {
    let mut opts = options(DatabaseKind::Sqlite, AuthKind::None);
    opts.resource = "blog_posts".into();
    let p = render(&opts).unwrap();
    let handler = &p.file("src/handlers/blog_posts.rs").unwrap().contents;
    assert!(handler.contains("pub fn router(service: BlogPostService)"));
    assert!(handler.contains("path = \"/blog_posts/{id}\""));
    assert!(p.file("src/models/blog_post.rs").is_some());
    assert!(p.file("migrations/sqlite/0001_create_blog_posts.sql").is_some());
}

#[test]
fn policies_and_manifest() {
    let p = render(&options(DatabaseKind::Sqlite, AuthKind::None)).unwrap();
    let m = p.manifest();
    assert_eq!(m.files.len(), p.files.len());
    assert!(m.files["src/main.rs"].sha256.len() == 64);
    assert_eq!(m.files["src/main.rs"].policy, Policy::Once);
    let text = m.to_toml().unwrap();
    assert!(text.contains("generator_version") && text.contains("policy = \"once\""), "{text}");
    // The header describes what the file is for without claiming commands that do not exist.
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(!header.is_empty() && header.iter().all(|l| !l.contains("used by")), "{header:?}");
    // It reads back as written, and then finds no file changed.
    let dir = tempfile::tempdir().unwrap();
    microframework_gen::write_new(&p, dir.path(), true).unwrap();
    assert_eq!(microframework_gen::Manifest::read(dir.path()).unwrap(), m);
    assert!(m.modified_files(dir.path()).is_empty());
    std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
    assert_eq!(m.modified_files(dir.path()), ["src/main.rs"]);
}

#[test]
fn invalid_options_are_refused_before_rendering() {
    let mut o = options(DatabaseKind::Sqlite, AuthKind::None);
    o.name = "Bad Name".into();
    assert!(render(&o).unwrap_err().to_string().contains("invalid service name"));
    let mut o = options(DatabaseKind::Sqlite, AuthKind::None);
    o.service_type = ServiceType::Event;
    let err = render(&o).unwrap_err().to_string();
    assert!(err.contains("not available") && err.contains("rest"), "{err}");
    let mut o = options(DatabaseKind::Sqlite, AuthKind::None);
    o.resource = "Users!".into();
    assert!(render(&o).is_err());
    let mut o = options(DatabaseKind::Sqlite, AuthKind::None);
    o.framework = FrameworkSource::Path(PathBuf::from("/definitely/not/here"));
    assert!(render(&o).unwrap_err().to_string().contains("not a MicroFramework checkout"));
}
