//! What the default stack adds to every documented operation: the problem details it can
//! answer with, so that the OpenAPI document says what clients (and contract testers) will see.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use microframework_core::ProblemDetails;

/// The name of the problem details schema in `components.schemas`.
pub const PROBLEM_SCHEMA: &str = "ProblemDetails";

/// Which error responses the default stack can produce.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StackResponses {
    /// `http.body_limit` is on: bodies can get `413`.
    pub(crate) body_limit: bool,
    /// `http.rate_limit` is on: any operation can get `429`.
    pub(crate) rate_limit: bool,
}

fn problem_schema() -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let field_error = ObjectBuilder::new()
        .property("field", string().description(Some("The field path, such as `email` or `address.zip`.")))
        .property("message", string().description(Some("What is wrong with it.")))
        .required("field")
        .required("message");
    ObjectBuilder::new()
        .description(Some("RFC 7807 problem details, the body of every error response."))
        .property("type", string().description(Some("A URI identifying the problem type.")))
        .property("title", string().description(Some("A short summary of the problem type.")))
        .property("status", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(400)).maximum(Some(599)))
        .property("detail", string().description(Some("What happened in this occurrence.")))
        .property("instance", string().description(Some("The request path.")))
        .property("code", string().description(Some("A stable, machine-readable error code.")))
        .property("request_id", string().description(Some("The request id, as in the logs.")))
        .property("errors", ArrayBuilder::new().items(field_error).description(Some("Per-field validation errors.")))
        .required("type")
        .required("title")
        .required("status")
        .required("code")
        .into()
}

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(PROBLEM_SCHEMA))).build();
    ResponseBuilder::new().description(description).content(ProblemDetails::CONTENT_TYPE, content).build().into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Adds the `ProblemDetails` schema, gives every `application/problem+json` response without a
/// schema that schema, and declares on each operation the errors the default stack produces:
/// `400` for malformed parameters or bodies, `413` and `415` for bodies, `429` when rate limiting
/// is on. Responses the operation declares itself are kept.
pub(crate) fn document_stack_responses(doc: &mut OpenApi, stack: StackResponses) {
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(PROBLEM_SCHEMA.to_owned(), problem_schema().into());
    for item in doc.paths.paths.values_mut() {
        let path_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        for op in operations(item) {
            let mut add = Vec::new();
            let has_params = path_params || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_body = op.request_body.is_some();
            if has_params || has_body {
                add.push(("400", "Malformed parameters or request body"));
            }
            if has_body {
                if stack.body_limit {
                    add.push(("413", "The request body is over the size limit"));
                }
                add.push(("415", "The request body is not `application/json`"));
            }
            if stack.rate_limit {
                add.push(("429", "Over the rate limit; retry after `Retry-After` seconds"));
            }
            for (status, description) in add {
                op.responses.responses.entry(status.to_owned()).or_insert_with(|| problem_response(description));
            }
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response
                    && let Some(RefOr::T(content)) = response.content.get_mut(ProblemDetails::CONTENT_TYPE)
                    && content.schema.is_none()
                {
                    content.schema = Some(Ref::from_schema_name(PROBLEM_SCHEMA).into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::{HttpMethod, OpenApiBuilder, PathsBuilder};

    use super::*;

    #[test]
    fn operations_gain_the_stack_s_responses() {
        let create = OperationBuilder::new()
            .request_body(Some(RequestBodyBuilder::new().build()))
            .response("201", ResponseBuilder::new().description("Created"))
            .response(
                "422",
                ResponseBuilder::new()
                    .description("Invalid")
                    .content(ProblemDetails::CONTENT_TYPE, ContentBuilder::new().build()),
            );
        let read = OperationBuilder::new()
            .parameter(ParameterBuilder::new().name("id").parameter_in(ParameterIn::Path))
            .response("200", ResponseBuilder::new().description("Found"));
        let plain = OperationBuilder::new().response("200", ResponseBuilder::new().description("Up"));
        let paths = PathsBuilder::new()
            .path("/things", PathItemBuilder::new().operation(HttpMethod::Post, create).build())
            .path("/things/{id}", PathItemBuilder::new().operation(HttpMethod::Get, read).build())
            .path("/ping", PathItemBuilder::new().operation(HttpMethod::Get, plain).build());
        let mut doc = OpenApiBuilder::new().paths(paths).build();
        document_stack_responses(&mut doc, StackResponses { body_limit: true, rate_limit: false });
        let statuses = |path: &str| -> Vec<String> {
            let item = &doc.paths.paths[path];
            let op = item.post.as_ref().or(item.get.as_ref()).unwrap();
            op.responses.responses.keys().cloned().collect()
        };
        assert_eq!(statuses("/things"), ["201", "400", "413", "415", "422"]);
        assert_eq!(statuses("/things/{id}"), ["200", "400"]);
        assert_eq!(statuses("/ping"), ["200"]);
        let json = serde_json::to_value(&doc).unwrap();
        let invalid = &json["paths"]["/things"]["post"]["responses"]["422"]["content"]["application/problem+json"];
        assert_eq!(invalid["schema"]["$ref"], "#/components/schemas/ProblemDetails", "{invalid}");
        assert!(json["components"]["schemas"]["ProblemDetails"]["properties"]["errors"].is_object());
    }
}
