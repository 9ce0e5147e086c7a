//! Where the image's build stage puts the service and the framework checkout it depends on by path.
//!
//! The service's `Cargo.toml` names the checkout by the path it was generated with, and the build
//! stage uses that manifest unchanged, so the checkout (the BuildKit named context
//! `microframework`) must land where that path points from the service's directory:
//!
//! - an absolute path: the checkout at that same path, the service at `/usr/src/NAME`;
//! - a relative path to a checkout beside the service (`../microframework`): both under
//!   `/usr/src`, at the same distance as on the disk;
//! - a relative path to a checkout that contains the service (`../..` for `examples/NAME` or
//!   `target/NAME`): the checkout at `/usr/src/microframework` and the service under its `target/`,
//!   which the framework's workspace excludes. Anywhere else below the checkout, cargo would take
//!   the framework's workspace for the service's, and fail (the service is its own workspace).

use std::path::{Component, Path};

/// The build stage's layout for a service named `name` whose framework path is `framework`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildLayout {
    /// The service's directory in the build stage (`WORKDIR`).
    pub(crate) workdir: String,
    /// Where the checkout goes in the build stage.
    pub(crate) framework_dir: String,
}

/// Where the in-image checkout goes when it contains the service.
const FRAMEWORK_DIR: &str = "/usr/src/microframework";

impl BuildLayout {
    pub(crate) fn new(name: &str, framework: &Path) -> Self {
        if framework.is_absolute() {
            return Self { workdir: format!("/usr/src/{name}"), framework_dir: slash(framework) };
        }
        // `..` components going up from the service, then the path down to the checkout.
        let mut up = 0usize;
        let mut down: Vec<String> = Vec::new();
        for c in framework.components() {
            match c {
                Component::ParentDir if down.pop().is_none() => up += 1,
                Component::ParentDir | Component::CurDir => {}
                other => down.push(other.as_os_str().to_string_lossy().into_owned()),
            }
        }
        let mut workdir: Vec<String> = Vec::new();
        let framework_dir = if down.is_empty() {
            // The checkout contains the service, `up` levels above it.
            workdir.push(FRAMEWORK_DIR.to_owned());
            if up >= 2 {
                workdir.push("target".to_owned());
                workdir.extend(std::iter::repeat_n("service".to_owned(), up - 2));
            }
            FRAMEWORK_DIR.to_owned()
        } else {
            workdir.push("/usr/src".to_owned());
            workdir.extend(std::iter::repeat_n("service".to_owned(), up.saturating_sub(1)));
            format!("/usr/src/{}", down.join("/"))
        };
        workdir.push(name.to_owned());
        Self { workdir: workdir.join("/"), framework_dir }
    }
}

/// `framework` as seen from `deployments/docker/` (Compose resolves a relative
/// `additional_contexts` path from the compose file's directory).
pub(crate) fn compose_framework_path(framework: &Path) -> String {
    if framework.is_absolute() { slash(framework) } else { format!("../../{}", slash(framework)) }
}

fn slash(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(framework: &str) -> (String, String) {
        let l = BuildLayout::new("svc", Path::new(framework));
        (l.workdir, l.framework_dir)
    }

    #[test]
    fn the_relative_path_resolves_from_the_workdir_to_the_checkout() {
        for (framework, workdir, checkout) in [
            ("/home/me/microframework", "/usr/src/svc", "/home/me/microframework"),
            ("../microframework", "/usr/src/svc", "/usr/src/microframework"),
            ("../../libs/mf", "/usr/src/service/svc", "/usr/src/libs/mf"),
            ("../..", "/usr/src/microframework/target/svc", "/usr/src/microframework"),
            ("../../..", "/usr/src/microframework/target/service/svc", "/usr/src/microframework"),
            ("./../x/../..", "/usr/src/microframework/target/svc", "/usr/src/microframework"),
        ] {
            assert_eq!(layout(framework), (workdir.to_owned(), checkout.to_owned()), "{framework}");
            if !framework.starts_with('/') {
                // What cargo does with the path in Cargo.toml, from the workdir.
                let mut resolved: Vec<&str> = workdir.split('/').collect();
                for part in framework.split('/') {
                    match part {
                        ".." => {
                            resolved.pop();
                        }
                        "." => {}
                        p => resolved.push(p),
                    }
                }
                assert_eq!(resolved.join("/"), checkout, "{framework}");
            }
        }
    }

    #[test]
    fn compose_paths_start_from_the_compose_file() {
        assert_eq!(compose_framework_path(Path::new("../..")), "../../../..");
        assert_eq!(compose_framework_path(Path::new("/opt/mf")), "/opt/mf");
    }
}
