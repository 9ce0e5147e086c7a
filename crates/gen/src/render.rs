//! Rendering the embedded templates into an in-memory project.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use heck::{ToSnakeCase, ToTitleCase};
use include_dir::{Dir, DirEntry, include_dir};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::GENERATOR_VERSION;
use crate::docker::{BuildLayout, compose_framework_path};
use crate::error::GenError;
use crate::manifest::Manifest;
use crate::options::{DatabaseKind, ServiceType};
use crate::options::{FrameworkSource, Options, ResourceNames};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Who owns a file once it is written; recorded for each file in the manifest.
///
/// Every template is user-owned today, so there is one policy. A file that a future `update`
/// would rewrite needs a policy of its own, added together with that command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Written once; afterwards the user owns it.
    Once,
}

/// A rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to the service root.
    pub path: PathBuf,
    /// Contents.
    pub contents: String,
    /// Policy.
    pub policy: Policy,
    /// Whether the file is a script to mark executable.
    pub executable: bool,
}

/// A rendered service: its files in path order, and its manifest.
#[derive(Debug, Clone)]
pub struct Project {
    /// The options it was rendered from.
    pub options: Options,
    /// Files, sorted by path.
    pub files: Vec<File>,
}

impl Project {
    /// The manifest describing this project.
    pub fn manifest(&self) -> Manifest {
        Manifest::from_project(self)
    }

    /// The file at `path`, if rendered.
    pub fn file(&self, path: &str) -> Option<&File> {
        self.files.iter().find(|f| f.path == Path::new(path))
    }
}

#[derive(Serialize)]
struct Context<'a> {
    name: &'a str,
    crate_name: String,
    title: String,
    service_type: &'a str,
    database: &'a str,
    auth: &'a str,
    resource: ResourceNames,
    port: u16,
    /// `server.admin_port` of the production configuration: `/metrics` and readiness details.
    admin_port: u16,
    grpc_port: u16,
    /// One pod only: SQLite (a single-writer file) or in-process state such as WebSocket rooms.
    single_replica: bool,
    generator_version: &'a str,
    rust_version: &'a str,
    framework_path: Option<String>,
    framework_version: Option<&'a str>,
    /// The build stage's directory of the service (the Dockerfile's `WORKDIR`).
    docker_workdir: String,
    /// Where the build stage puts the framework checkout (path dependency only).
    docker_framework_dir: Option<String>,
    /// The framework checkout as seen from `deployments/docker/` (path dependency only).
    compose_framework_path: Option<String>,
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut BTreeMap<PathBuf, &'a include_dir::File<'a>>, root: &Path) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => collect(d, out, root),
            DirEntry::File(f) => {
                let rel = f.path().strip_prefix(root).unwrap_or(f.path()).to_path_buf();
                out.insert(rel, f);
            }
        }
    }
}

/// Renders the project for `options` (validated first). Nothing touches the disk.
pub fn render(options: &Options) -> Result<Project, GenError> {
    options.validate()?;
    let (framework_path, framework_version) = match &options.framework {
        FrameworkSource::Path(p) => (Some(p.display().to_string()), None),
        FrameworkSource::Version(v) => (None, Some(v.as_str())),
    };
    let (docker_workdir, docker_framework_dir, compose_framework_path) = match &options.framework {
        FrameworkSource::Path(p) => {
            let layout = BuildLayout::new(&options.name, p);
            (layout.workdir, Some(layout.framework_dir), Some(compose_framework_path(p)))
        }
        FrameworkSource::Version(_) => (format!("/usr/src/{}", options.name), None, None),
    };
    let ctx = Context {
        name: &options.name,
        crate_name: options.name.to_snake_case(),
        title: options.name.to_title_case(),
        service_type: options.service_type.as_str(),
        database: options.database.as_str(),
        auth: options.auth.as_str(),
        resource: ResourceNames::new(&options.resource),
        port: 8080,
        admin_port: 9090,
        grpc_port: 50051,
        single_replica: options.database == DatabaseKind::Sqlite || options.service_type == ServiceType::Websocket,
        generator_version: GENERATOR_VERSION,
        rust_version: "1.94",
        framework_path,
        framework_version,
        docker_workdir,
        docker_framework_dir,
        compose_framework_path,
    };

    // Common templates, then shared layers (the CRUD resource), then the type's own; a later
    // layer overrides a file of the same path.
    let mut sources = BTreeMap::new();
    for layer in options.service_type.layers() {
        if let Some(dir) = TEMPLATES.get_dir(layer) {
            collect(dir, &mut sources, Path::new(layer));
        }
    }

    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| GenError::Template { template: "<syntax>".into(), message: e.to_string() })?;
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::Strict);

    let ctx = minijinja::Value::from(minijinja::value::Serde(&ctx));
    let mut files = Vec::new();
    for (rel, file) in sources {
        let rel_str = rel.to_string_lossy().to_string();
        let template_err =
            |e: minijinja::Error| GenError::Template { template: rel_str.clone(), message: format!("{e:#}") };
        // Path segments may hold expressions such as {{name}}.
        let mut out_path = if rel_str.contains("{{") {
            env.render_str(&rel_str, &ctx).map_err(template_err)?
        } else {
            rel_str.clone()
        };
        let contents = if let Some(stripped) = out_path.strip_suffix(".jinja") {
            out_path = stripped.to_owned();
            let source = file.contents_utf8().ok_or_else(|| GenError::Template {
                template: rel_str.clone(),
                message: "template is not UTF-8".into(),
            })?;
            env.render_str(source, &ctx).map_err(template_err)?
        } else {
            String::from_utf8_lossy(file.contents()).into_owned()
        };
        if contents.trim().is_empty() || out_path.split('/').any(str::is_empty) {
            continue;
        }
        let policy = Policy::Once;
        let executable = out_path.ends_with(".sh");
        files.push(File { path: PathBuf::from(out_path), contents, policy, executable });
    }
    crate::format::rustfmt(&mut files);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Project { options: options.clone(), files })
}
