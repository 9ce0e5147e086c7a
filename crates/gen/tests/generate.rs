//! `generate resource|handler` as a library: what it creates, that it composes with `add` and
//! `update`, and what it refuses.

use std::path::Path;

use microframework_gen::{
    AddAction, AuthKind, DatabaseKind, ExtraResource, FrameworkSource, GenError, GenerateKind, Options, ServiceType,
    apply_add, plan_add, plan_generate, plan_update,
};

mod common;
use common::{generated, tree};

fn options(service_type: ServiceType, database: DatabaseKind) -> Options {
    Options {
        service_type,
        database,
        auth: AuthKind::None,
        ..Options::new("svc-gen", FrameworkSource::Version("0.1".into()))
    }
}

fn generate(dir: &Path, kind: GenerateKind, name: &str) -> Vec<(String, AddAction)> {
    let plan = plan_generate(dir, kind, name, false).unwrap();
    let changes = plan.changes.iter().map(|c| (c.path.to_string_lossy().replace('\\', "/"), c.action)).collect();
    apply_add(&plan).unwrap();
    changes
}

#[test]
fn a_resource_is_created_once_and_registered_in_the_generated_wiring() {
    let (_tmp, dir) = generated(&options(ServiceType::Rest, DatabaseKind::Postgres));
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    let changes = generate(&dir, GenerateKind::Resource, "orders");
    let want = [
        ("migrations/postgres/0002_create_orders.sql", AddAction::Create),
        ("src/generated/mod.rs", AddAction::Rewrite),
        ("src/handlers/orders.rs", AddAction::Create),
        ("src/models/order.rs", AddAction::Create),
        ("src/repositories/order_repository.rs", AddAction::Create),
        ("src/services/order_service.rs", AddAction::Create),
        ("tests/orders/main.rs", AddAction::Create),
    ];
    assert_eq!(changes, want.map(|(p, a)| (p.to_owned(), a)));
    assert_eq!(std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(), lib, "no user file is edited");
    let wiring = std::fs::read_to_string(dir.join("src/generated/mod.rs")).unwrap();
    assert!(wiring.contains("#[path = \"../handlers/orders.rs\"]"), "{wiring}");
    assert!(wiring.contains("Ok(handlers::orders::router("), "{wiring}");
    let migration = std::fs::read_to_string(dir.join("migrations/postgres/0002_create_orders.sql")).unwrap();
    assert!(migration.contains("CREATE TABLE") && migration.contains("orders"), "{migration}");

    // Once: a second run, and the service's own resource, are nothing to do.
    let before = tree(&dir);
    for name in ["orders", "users"] {
        let plan = plan_generate(&dir, GenerateKind::Resource, name, false).unwrap();
        assert!(plan.already_applied && plan.changes.is_empty(), "{name}");
        apply_add(&plan).unwrap();
    }
    assert_eq!(tree(&dir), before);

    // The next resource takes the next migration; update finds nothing to change.
    generate(&dir, GenerateKind::Resource, "invoices");
    assert!(dir.join("migrations/postgres/0003_create_invoices.sql").is_file());
    assert!(plan_update(&dir).unwrap().is_noop());
}

#[test]
fn generated_code_survives_adding_a_layer_afterwards() {
    // new (no database) → generate resource + handler → add database: the same as rendering all
    // of it at once.
    let (_tmp, dir) = generated(&options(ServiceType::Rest, DatabaseKind::None));
    generate(&dir, GenerateKind::Resource, "orders");
    generate(&dir, GenerateKind::Handler, "daily_report");
    let plan = plan_add(&dir, "database", Some("mysql"), false).unwrap();
    assert_eq!(plan.conflicts().count(), 0);
    apply_add(&plan).unwrap();
    let mut want = options(ServiceType::Rest, DatabaseKind::Mysql);
    want.resources.push(ExtraResource { name: "orders".into(), migration: 2 });
    want.handlers.push("daily_report".into());
    let (_tmp2, expected) = generated(&want);
    assert_eq!(tree(&dir), tree(&expected));
    assert!(dir.join("migrations/mysql/0002_create_orders.sql").is_file());
    assert!(dir.join("tests/handler_daily_report.rs").is_file());
}

#[test]
fn what_generate_cannot_do_is_refused_with_nothing_written() {
    let (_tmp, dir) = generated(&options(ServiceType::Rest, DatabaseKind::Sqlite));
    std::fs::write(dir.join("src/handlers/reports.rs"), "// mine\n").unwrap();
    let before = tree(&dir);
    let err = |kind, name: &str| plan_generate(&dir, kind, name, false).unwrap_err().to_string();
    assert!(err(GenerateKind::Resource, "Orders!").contains("invalid resource name `Orders!`"));
    assert!(err(GenerateKind::Handler, "bad-name").contains("invalid handler name `bad-name`"));
    assert!(err(GenerateKind::Resource, "handlers").contains("one of the service's own modules"));
    assert!(err(GenerateKind::Handler, "users").contains("already has a resource or handler called `users`"));
    let e = err(GenerateKind::Handler, "reports");
    assert!(e.contains("src/handlers/reports.rs") && e.contains("not the generator's"), "{e}");
    assert!(err(GenerateKind::Protobuf, "billing").contains("works on gRPC services, and this is a rest service"));
    assert!(err(GenerateKind::Graphql, "invoice").contains("works on GraphQL services, and this is a rest service"));
    assert_eq!(tree(&dir), before);

    let (_tmp, grpc) = generated(&options(ServiceType::Grpc, DatabaseKind::Sqlite));
    let e = plan_generate(&grpc, GenerateKind::Resource, "orders", false).unwrap_err();
    assert!(matches!(e, GenError::Generate(_)) && e.to_string().contains("this is a grpc service"), "{e}");
}

#[test]
fn a_protobuf_service_is_created_once_and_added_to_the_grpc_server_by_the_wiring() {
    let (_tmp, dir) = generated(&options(ServiceType::Grpc, DatabaseKind::Sqlite));
    let build = std::fs::read_to_string(dir.join("build.rs")).unwrap();
    assert!(build.contains("fn protos(") && build.contains("open_files(files)"), "build.rs compiles every proto");
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains("generated::grpc_services(builder)"), "{lib}");
    let changes = generate(&dir, GenerateKind::Protobuf, "billing");
    let want = [
        ("proto/svc_gen/v1/billing.proto", AddAction::Create),
        ("src/generated/mod.rs", AddAction::Rewrite),
        ("src/grpc/billing.rs", AddAction::Create),
        ("tests/grpc_billing.rs", AddAction::Create),
    ];
    assert_eq!(changes, want.map(|(p, a)| (p.to_owned(), a)));
    let proto = std::fs::read_to_string(dir.join("proto/svc_gen/v1/billing.proto")).unwrap();
    assert!(proto.contains("package svc_gen.v1;") && proto.contains("service Billing {"), "{proto}");
    let wiring = std::fs::read_to_string(dir.join("src/generated/mod.rs")).unwrap();
    assert!(wiring.contains("BillingServer::new(grpc::BillingApi)"), "{wiring}");
    assert_eq!(std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(), lib, "no user file is edited");
    let plan = plan_generate(&dir, GenerateKind::Protobuf, "billing", false).unwrap();
    assert!(plan.already_applied);
    assert!(
        plan_generate(&dir, GenerateKind::Protobuf, "users", false).unwrap_err().to_string().contains("already has")
    );
    assert!(plan_update(&dir).unwrap().is_noop());
}

#[test]
fn a_graphql_type_is_created_once_and_merged_into_the_query_root_by_the_wiring() {
    let (_tmp, dir) = generated(&options(ServiceType::Graphql, DatabaseKind::None));
    let schema = std::fs::read_to_string(dir.join("src/graphql/schema.rs")).unwrap();
    assert!(schema.contains("pub struct Query(pub QueryRoot, pub crate::generated::graphql::Queries);"), "{schema}");
    let changes = generate(&dir, GenerateKind::Graphql, "invoice");
    let want = [
        ("src/generated/mod.rs", AddAction::Rewrite),
        ("src/graphql/invoice.rs", AddAction::Create),
        ("tests/graphql_invoice.rs", AddAction::Create),
    ];
    assert_eq!(changes, want.map(|(p, a)| (p.to_owned(), a)));
    let wiring = std::fs::read_to_string(dir.join("src/generated/mod.rs")).unwrap();
    assert!(wiring.contains("pub super::invoice_graphql::InvoiceQuery"), "{wiring}");
    assert_eq!(std::fs::read_to_string(dir.join("src/graphql/schema.rs")).unwrap(), schema, "no user file is edited");
    assert!(plan_generate(&dir, GenerateKind::Graphql, "invoice", false).unwrap().already_applied);
    for clash in ["user", "users_by_ids", "schema"] {
        let e = plan_generate(&dir, GenerateKind::Graphql, clash, false).unwrap_err().to_string();
        assert!(e.contains("clash") || e.contains("own modules"), "{clash}: {e}");
    }
    assert!(plan_update(&dir).unwrap().is_noop());
}
