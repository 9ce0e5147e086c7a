//! The deployment artifacts of generated services pass offline validation: yamllint on every
//! YAML file, Kubernetes schema validation (kubernetes-validate, strict) of the plain manifests
//! and of both rendered kustomize overlays, and hadolint on the Dockerfile.
//!
//! The Helm chart passes `helm lint --strict` and its rendered templates (defaults, and with
//! ingress and autoscaling on) pass the same schema validation.
//!
//! The tools come from `.ci/run` (a virtualenv in ~/.cache/microframework-tools with helm
//! unpacked into it, and Debian's kubectl for `kubectl kustomize`).
//!
//! Every rendering (the plain manifests, both overlays, the chart) is also read back as YAML and
//! checked for what a cluster would do with it: the probes and the Prometheus annotations use the
//! admin port, the Service exposes it under its own name while the Ingress routes only to `http`.

mod common;

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

use common::{generate, tool};

const ADMIN_PORT: u64 = 9090;

/// The documents of a multi-document YAML stream.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text).map(|d| Value::deserialize(d).unwrap()).filter(|v| !v.is_null()).collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

fn the<'a>(docs: &'a [Value], kind: &str, label: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "{label}: expected one {kind}, found {}", found.len());
    found[0]
}

fn seq(v: &Value) -> &[Value] {
    v.as_sequence().map(Vec::as_slice).unwrap_or_default()
}

fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    seq(list).iter().find(|p| p["name"].as_str() == Some(name))
}

/// The Deployment, Service and Ingress of one rendering route and probe as documented.
fn check_ports_and_probes(label: &str, docs: &[Value], grpc: bool) {
    let deployment = the(docs, "Deployment", label);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/port"].as_str(),
        Some("9090"),
        "{label}: Prometheus scrapes the admin port"
    );
    let container = &pod["spec"]["containers"][0];
    let admin = named(&container["ports"], "admin").unwrap_or_else(|| panic!("{label}: no container port `admin`"));
    assert_eq!(admin["containerPort"].as_u64(), Some(ADMIN_PORT), "{label}");
    assert_eq!(
        named(&container["env"], "APP_SERVER__ADMIN_PORT").and_then(|e| e["value"].as_str()),
        Some("9090"),
        "{label}: the service is told its admin port"
    );
    for probe in ["startupProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"].as_str(), Some("admin"), "{label}: {probe}");
    }
    let readiness = &container["readinessProbe"];
    if grpc {
        assert_eq!(readiness["grpc"]["port"].as_u64(), Some(50051), "{label}: gRPC readiness stays on the gRPC port");
    } else {
        assert_eq!(readiness["httpGet"]["port"].as_str(), Some("admin"), "{label}: readinessProbe");
    }
    let service = the(docs, "Service", label);
    let admin = named(&service["spec"]["ports"], "admin").unwrap_or_else(|| panic!("{label}: no Service port `admin`"));
    assert_eq!((admin["port"].as_u64(), admin["targetPort"].as_str()), (Some(ADMIN_PORT), Some("admin")), "{label}");
    let http = named(&service["spec"]["ports"], "http").unwrap_or_else(|| panic!("{label}: no Service port `http`"));
    assert_eq!(http["targetPort"].as_str(), Some("http"), "{label}");
    for ingress in of_kind(docs, "Ingress") {
        for rule in seq(&ingress["spec"]["rules"]) {
            for path in seq(&rule["http"]["paths"]) {
                let port = &path["backend"]["service"]["port"];
                assert_eq!(port["name"].as_str(), Some("http"), "{label}: the Ingress routes only to `http`: {port:?}");
            }
        }
    }
}

/// The plain manifests of deployments/kubernetes, as one stream.
fn base_documents(dir: &Path, manifests: &[String]) -> Vec<Value> {
    manifests.iter().flat_map(|m| documents(&std::fs::read_to_string(dir.join(m)).unwrap())).collect()
}

/// The production configuration: in the service's configs/ and in the ConfigMap.
fn check_prod_config(label: &str, prod: &Value, grpc: bool) {
    assert_eq!(prod["server"]["admin_port"].as_u64(), Some(ADMIN_PORT), "{label}: {prod:?}");
    if grpc {
        assert_eq!(prod["grpc"]["reflection"].as_bool(), Some(false), "{label}: no reflection in prod");
    }
}

/// Runs `program`: whether it succeeded, its stdout and stderr, and a description for failures.
fn exec<S: AsRef<str>>(program: &Path, args: &[S], cwd: &Path) -> (bool, String, String) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let out = Command::new(program).args(&args).current_dir(cwd).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let what = format!("`{} {}` in {}", program.display(), args.join(" "), cwd.display());
    (out.status.success(), text, what)
}

/// Runs `program`, which must succeed; returns its output.
fn run<S: AsRef<str>>(program: &Path, args: &[S], cwd: &Path) -> String {
    let (ok, text, what) = exec(program, args, cwd);
    assert!(ok, "{what} failed:\n{text}");
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

/// An HPA owns the replica count of its Deployment: a `replicas` beside it would be reset by every
/// `kubectl apply` / `helm upgrade`.
fn check_no_replicas_under_an_hpa(label: &str, docs: &[Value]) {
    for hpa in of_kind(docs, "HorizontalPodAutoscaler") {
        let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
        let deployment = of_kind(docs, "Deployment")
            .into_iter()
            .find(|d| d["metadata"]["name"].as_str() == Some(target))
            .unwrap_or_else(|| panic!("{label}: the HPA targets {target}, which is not rendered"));
        assert!(deployment["spec"]["replicas"].is_null(), "{label}: Deployment {target} sets replicas under an HPA");
    }
}

/// The pod's `data` volume (the SQLite directory), if any.
fn data_volume<'a>(label: &str, docs: &'a [Value]) -> Option<&'a Value> {
    named(&the(docs, "Deployment", label)["spec"]["template"]["spec"]["volumes"], "data")
}

/// The SQLite directory is on a PersistentVolumeClaim: `claim`, or one that the rendering creates.
fn check_data_on_a_claim(label: &str, docs: &[Value], claim: Option<&str>) {
    let volume = data_volume(label, docs).unwrap_or_else(|| panic!("{label}: no data volume"));
    assert!(volume["emptyDir"].is_null(), "{label}: the data volume is still an emptyDir: {volume:?}");
    let name = volume["persistentVolumeClaim"]["claimName"].as_str().unwrap_or_else(|| panic!("{label}: {volume:?}"));
    let pvcs = of_kind(docs, "PersistentVolumeClaim");
    match claim {
        Some(expected) => {
            assert_eq!(name, expected, "{label}");
            assert!(pvcs.is_empty(), "{label}: a claim is created next to the existing one");
        }
        None => {
            assert_eq!(pvcs.len(), 1, "{label}: the claim is rendered with the Deployment");
            assert_eq!(pvcs[0]["metadata"]["name"].as_str(), Some(name), "{label}");
            let modes = seq(&pvcs[0]["spec"]["accessModes"]);
            assert_eq!(modes.first().and_then(Value::as_str), Some("ReadWriteOnce"), "{label}");
        }
    }
}

fn check_data_on_an_empty_dir(label: &str, docs: &[Value]) {
    let volume = data_volume(label, docs).unwrap_or_else(|| panic!("{label}: no data volume"));
    assert!(volume["emptyDir"].is_mapping(), "{label}: {volume:?}");
    assert!(of_kind(docs, "PersistentVolumeClaim").is_empty(), "{label}");
}

/// `--set-string secrets.KEY=VALUE` for every key of the chart's `secrets`, with real-looking values.
fn secret_flags(values: &Value) -> Vec<String> {
    let mut flags = Vec::new();
    for (key, placeholder) in values["secrets"].as_mapping().into_iter().flatten() {
        let key = key.as_str().unwrap();
        let placeholder = placeholder.as_str().unwrap();
        assert!(placeholder.contains("change-me"), "secrets.{key} is a placeholder: {placeholder}");
        let value = match placeholder.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://svc:Zq4wL0s9@db.internal:5432/svc"),
            None => "a7Vq0XzK3mPp9sLr2TdYw8NbCf6GhJk1UeRi5OoQaZx4".to_owned(),
        };
        flags.push("--set-string".to_owned());
        flags.push(format!("secrets.{key}={value}"));
    }
    flags
}

/// Runs `program`, which must fail; returns its output.
fn run_failing<S: AsRef<str>>(program: &Path, args: &[S], cwd: &Path) -> String {
    let (ok, text, what) = exec(program, args, cwd);
    assert!(!ok, "{what} succeeded:\n{text}");
    text
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
        let grpc = flags.contains(&"--type=grpc");
        let sqlite = flags.contains(&"--with-database=sqlite");
        let manifests = k8s_manifests(&dir);
        assert!(manifests.len() >= 5, "{name}: {manifests:?}");
        let base = base_documents(&dir, &manifests);
        check_ports_and_probes(&format!("{name}/base"), &base, grpc);
        check_no_replicas_under_an_hpa(&format!("{name}/base"), &base);
        if sqlite {
            check_data_on_an_empty_dir(&format!("{name}/base"), &base);
        }
        let configs = dir.join("configs");
        let prod: Value =
            serde_yaml::from_str(&std::fs::read_to_string(configs.join("config.prod.yaml")).unwrap()).unwrap();
        check_prod_config(&format!("{name}/config.prod.yaml"), &prod, grpc);
        let dev: Value =
            serde_yaml::from_str(&std::fs::read_to_string(configs.join("config.dev.yaml")).unwrap()).unwrap();
        assert!(dev["server"]["admin_port"].is_null(), "{name}: no admin port in dev");
        let configmap = the(&base, "ConfigMap", name);
        let prod: Value = serde_yaml::from_str(configmap["data"]["config.prod.yaml"].as_str().unwrap()).unwrap();
        check_prod_config(&format!("{name}/configmap"), &prod, grpc);
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
                let label = format!("{name}/{overlay}");
                let docs = documents(&rendered);
                check_ports_and_probes(&label, &docs, grpc);
                check_no_replicas_under_an_hpa(&label, &docs);
                assert_eq!(of_kind(&docs, "HorizontalPodAutoscaler").len(), 1, "{label}");
                match (sqlite, overlay) {
                    // Production keeps the database across rollouts; dev may lose it.
                    (true, "prod") => check_data_on_a_claim(&label, &docs, None),
                    (true, _) => check_data_on_an_empty_dir(&label, &docs),
                    (false, _) => assert!(data_volume(&label, &docs).is_none(), "{label}"),
                }
            }
        }
        let values_path = dir.join(format!("deployments/helm/{name}/values.yaml"));
        let values: Value = serde_yaml::from_str(&std::fs::read_to_string(&values_path).unwrap()).unwrap();
        let secrets = secret_flags(&values);
        if let (Some(h), Some(v)) = (&helm, &validate) {
            let chart = format!("deployments/helm/{name}");
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            let template = |extra: &[&str]| {
                let mut args = vec!["template", "release", chart.as_str()];
                args.extend_from_slice(extra);
                args.into_iter().map(str::to_owned).collect::<Vec<_>>()
            };
            let mut lint = vec!["lint", "--strict", chart.as_str()];
            lint.extend_from_slice(&secrets);
            run(h, &lint, &dir);
            // The defaults hold change-me placeholders: the chart refuses them, naming each.
            let keys: Vec<&str> =
                values["secrets"].as_mapping().into_iter().flatten().map(|(k, _)| k.as_str().unwrap()).collect();
            if keys.is_empty() {
                run(h, &template(&[]), &dir);
            } else {
                let out = run_failing(h, &template(&[]), &dir);
                assert!(out.contains("change-me placeholder"), "{name}: {out}");
                for key in &keys {
                    assert!(out.contains(&format!("--set-string secrets.{key}=")), "{name}: {key} is named: {out}");
                }
                assert!(out.contains("openssl rand") == keys.contains(&"JWT_SECRET"), "{name}: {out}");
                // A Secret managed elsewhere replaces them.
                run(h, &template(&["--set-string", "existingSecret=managed-elsewhere"]), &dir);
            }
            let with_secrets = |extra: &[&str]| {
                let mut args = secrets.clone();
                args.extend_from_slice(extra);
                template(&args)
            };
            for (i, extra) in [&[][..], &["--set", "ingress.enabled=true", "--set", "autoscaling.enabled=true"][..]]
                .iter()
                .enumerate()
            {
                let rendered = run(h, &with_secrets(extra), &dir);
                let file = dir.join(format!("helm-{i}.yaml"));
                std::fs::write(&file, &rendered).unwrap();
                run(v, &["--strict", file.to_str().unwrap()], &dir);
                let label = format!("{name}/helm-{i}");
                let docs = documents(&rendered);
                check_ports_and_probes(&label, &docs, grpc);
                check_no_replicas_under_an_hpa(&label, &docs);
                let config: Value =
                    serde_yaml::from_str(the(&docs, "ConfigMap", name)["data"]["config.yaml"].as_str().unwrap())
                        .unwrap();
                if grpc {
                    assert_eq!(config["grpc"]["reflection"].as_bool(), Some(false), "{label}");
                }
                if sqlite {
                    check_data_on_a_claim(&label, &docs, None);
                } else {
                    assert!(data_volume(&label, &docs).is_none(), "{label}");
                }
            }
            if sqlite {
                // SQLite on an emptyDir loses the database with every pod: refused in prod...
                let out = run_failing(h, &with_secrets(&["--set", "data.persistence.enabled=false"]), &dir);
                assert!(
                    out.contains("SQLite") && out.contains("emptyDir") && out.contains("data.existingClaim"),
                    "{name}: {out}"
                );
                // ...allowed elsewhere,
                let dev =
                    run(h, &with_secrets(&["--set", "data.persistence.enabled=false", "--set", "appEnv=dev"]), &dir);
                check_data_on_an_empty_dir(&format!("{name}/helm-dev"), &documents(&dev));
                // and an existing claim replaces the chart's.
                let existing = run(h, &with_secrets(&["--set", "data.existingClaim=sqlite-data"]), &dir);
                check_data_on_a_claim(
                    &format!("{name}/helm-existing-claim"),
                    &documents(&existing),
                    Some("sqlite-data"),
                );
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
        assert!(dockerfile.contains("EXPOSE 8080 9090"), "{name}: the admin port is exposed");
        if flags.contains(&"--type=grpc") {
            // gRPC services are ready when grpc.health.v1 says SERVING, which follows /health/ready.
            assert!(
                deployment.contains("grpc:") && deployment.contains("containerPort: 50051"),
                "{name}: {deployment}"
            );
        } else {
            assert!(deployment.contains("/health/ready"), "{name}: deployment lacks /health/ready");
        }
        if flags.contains(&"--type=websocket") || sqlite {
            // Rooms (or the SQLite file) live in one process: the HPA pins one pod, no PDB.
            let hpa = the(&base, "HorizontalPodAutoscaler", name);
            assert_eq!(
                (hpa["spec"]["minReplicas"].as_u64(), hpa["spec"]["maxReplicas"].as_u64()),
                (Some(1), Some(1)),
                "{name}"
            );
            assert!(!dir.join("deployments/overlays/prod/pdb.yaml").exists(), "{name}: a PDB on one replica");
        }
        assert_eq!(dir.join("deployments/overlays/prod/pvc.yaml").exists(), sqlite, "{name}: a claim for SQLite only");
        for key in ["image", "replicaCount", "resources", "config", "secrets", "adminPort", "data"] {
            assert!(!values[key].is_null(), "{name}: values.yaml lacks {key}");
        }
        assert_eq!(values["data"]["persistence"]["enabled"].as_bool(), Some(sqlite), "{name}");
    }
}
