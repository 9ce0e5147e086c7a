//! The deployment artifacts of generated services pass offline validation: yamllint on every
//! YAML file, Kubernetes schema validation (kubernetes-validate, strict) of the plain manifests
//! and of both rendered kustomize overlays, and hadolint on the Dockerfile.
//!
//! The Helm chart passes `helm lint --strict` and its rendered templates (defaults, and with
//! ingress and autoscaling on) pass the same schema validation.
//!
//! The tools come from `.ci/run` (a virtualenv in ~/.cache/microframework-tools with helm
//! unpacked into it, and Debian's kubectl for `kubectl kustomize`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{generate, tool};

fn run(program: &Path, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(program).args(args).current_dir(cwd).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "`{} {}` failed in {}:\n{text}", program.display(), args.join(" "), cwd.display());
    text
}

fn k8s_manifests(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join("deployments/kubernetes"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_owned();
            (name.ends_with(".yaml") && name != "kustomization.yaml").then(|| format!("deployments/kubernetes/{name}"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn generated_deployment_files_validate_offline() {
    let yamllint = tool("yamllint");
    let validate = tool("kubernetes-validate");
    let hadolint = tool("hadolint");
    let kubectl = tool("kubectl");
    let helm = tool("helm");
    let tmp = tempfile::tempdir().unwrap();
    let variants: [(&str, &[&str]); 8] = [
        ("dep-sqlite", &["--with-database=sqlite"]),
        // The longest name allowed, so that no line grows past the linters' limits.
        ("a-service-name-that-is-exactly-fifty-characters-ab", &["--with-database=postgres", "--with-auth=jwt"]),
        ("dep-postgres-jwt", &["--with-database=postgres", "--with-auth=jwt"]),
        ("dep-mysql", &["--with-database=mysql"]),
        ("dep-memory-jwt", &["--with-database=none", "--with-auth=jwt"]),
        ("dep-ws-postgres-jwt", &["--type=websocket", "--with-database=postgres", "--with-auth=jwt"]),
        ("dep-grpc-postgres-jwt", &["--type=grpc", "--with-database=postgres", "--with-auth=jwt"]),
        ("dep-graphql-sqlite", &["--type=graphql", "--with-database=sqlite"]),
    ];
    for (name, flags) in variants {
        let dir = generate(tmp.path(), name, flags);
        if let Some(y) = &yamllint {
            run(y, &["--strict", "-c", ".yamllint.yaml", "."], &dir);
        }
        let manifests = k8s_manifests(&dir);
        assert!(manifests.len() >= 5, "{name}: {manifests:?}");
        if let Some(v) = &validate {
            let mut args = vec!["--strict"];
            args.extend(manifests.iter().map(String::as_str));
            let out = run(v, &args, &dir);
            assert!(!out.to_lowercase().contains("warn"), "{name}: {out}");
        }
        if let (Some(k), Some(v)) = (&kubectl, &validate) {
            for overlay in ["dev", "prod"] {
                let rendered = run(k, &["kustomize", &format!("deployments/overlays/{overlay}")], &dir);
                let file = dir.join(format!("rendered-{overlay}.yaml"));
                std::fs::write(&file, &rendered).unwrap();
                run(v, &["--strict", file.to_str().unwrap()], &dir);
                assert!(rendered.contains("kind: Deployment"), "{name}/{overlay}: {rendered}");
            }
        }
        if let (Some(h), Some(v)) = (&helm, &validate) {
            let chart = format!("deployments/helm/{name}");
            run(h, &["lint", "--strict", &chart], &dir);
            for (i, extra) in [&[][..], &["--set", "ingress.enabled=true", "--set", "autoscaling.enabled=true"][..]]
                .iter()
                .enumerate()
            {
                let mut args = vec!["template", "release", chart.as_str()];
                args.extend_from_slice(extra);
                let rendered = run(h, &args, &dir);
                let file = dir.join(format!("helm-{i}.yaml"));
                std::fs::write(&file, &rendered).unwrap();
                run(v, &["--strict", file.to_str().unwrap()], &dir);
            }
        }
        if let Some(h) = &hadolint {
            run(h, &["deployments/docker/Dockerfile"], &dir);
        }
        let dockerfile = std::fs::read_to_string(dir.join("deployments/docker/Dockerfile")).unwrap();
        assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("--healthcheck"), "{name}");
        assert!(dockerfile.matches("FROM ").count() >= 2, "{name}: multi-stage");
        assert!(dockerfile.contains("USER nonroot") || dockerfile.contains("USER 65532"), "{name}: non-root");
        let deployment = std::fs::read_to_string(dir.join("deployments/kubernetes/deployment.yaml")).unwrap();
        for probe in ["/health/live", "runAsNonRoot: true", "resources:"] {
            assert!(deployment.contains(probe), "{name}: deployment lacks {probe}");
        }
        if flags.contains(&"--type=grpc") {
            // gRPC services are ready when grpc.health.v1 says SERVING, which follows /health/ready.
            assert!(
                deployment.contains("grpc:") && deployment.contains("containerPort: 50051"),
                "{name}: {deployment}"
            );
        } else {
            assert!(deployment.contains("/health/ready"), "{name}: deployment lacks /health/ready");
        }
        if flags.contains(&"--type=websocket") || flags.contains(&"--with-database=sqlite") {
            // Rooms (or the SQLite file) live in one process: one pod everywhere, no PDB.
            let hpa = std::fs::read_to_string(dir.join("deployments/kubernetes/hpa.yaml")).unwrap();
            assert!(deployment.contains("replicas: 1\n"), "{name}: {deployment}");
            assert!(hpa.contains("minReplicas: 1\n") && hpa.contains("maxReplicas: 1\n"), "{name}: {hpa}");
            assert!(!dir.join("deployments/overlays/prod/pdb.yaml").exists(), "{name}: a PDB on one replica");
        }
        let values = std::fs::read_to_string(dir.join(format!("deployments/helm/{name}/values.yaml"))).unwrap();
        for key in ["image:", "replicaCount:", "resources:", "config:", "secrets:"] {
            assert!(values.contains(key), "{name}: values.yaml lacks {key}");
        }
    }
}
