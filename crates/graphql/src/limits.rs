//! Depth and complexity limits: the [`Limits`] extension.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerError, ServerResult, ValidationResult, Variables};

use crate::telemetry::operation;

/// The message of a query over the depth limit (the wording of async-graphql's own limit).
pub const TOO_DEEP: &str = "Query is nested too deep.";
/// The message of a query over the complexity limit (the wording of async-graphql's own limit).
pub const TOO_COMPLEX: &str = "Query is too complex.";

/// The most selections walked when measuring an introspection query; past that it is measured
/// like any other query.
const MAX_WALK: usize = 10_000;

/// The async-graphql extension that enforces the depth and complexity limits.
///
/// It checks the depth and complexity async-graphql computes during validation (the same numbers
/// as `SchemaBuilder::limit_depth` and `limit_complexity`) and rejects the operation with
/// `Query is nested too deep.` or `Query is too complex.`, with one exception: in an operation
/// that only selects introspection fields (`__schema`, `__type`, `__typename`), the `ofType`
/// fields do not count. Their nesting follows the wrapping of a type (`[Book!]!` is three
/// levels) and returns at most one object per level, but the standard introspection query of
/// GraphiQL and other tools nests nine of them, a depth of 15 that the default limit of 10 would
/// refuse. Lists (`fields`, `types`, ...) inside introspection still count.
///
/// [`crate::configure`] adds it with the limits of [`GraphqlConfig`](crate::GraphqlConfig).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The deepest selection nesting accepted.
    pub max_depth: usize,
    /// The largest complexity accepted.
    pub max_complexity: usize,
}

impl Limits {
    /// Limits of `max_depth` and `max_complexity`.
    pub fn new(max_depth: usize, max_complexity: usize) -> Self {
        Self { max_depth, max_complexity }
    }
}

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsExtension { limits: *self, state: Mutex::new(State::default()) })
    }
}

#[derive(Default)]
struct State {
    operation_name: Option<String>,
    /// `(depth, complexity)` of an introspection-only operation, `ofType` not counted.
    introspection: Option<(usize, usize)>,
}

struct LimitsExtension {
    limits: Limits,
    state: Mutex<State>,
}

impl LimitsExtension {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for LimitsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        self.lock().operation_name.clone_from(&request.operation_name);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut state = self.lock();
        state.introspection = introspection_cost(&document, state.operation_name.as_deref());
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let (depth, complexity) = self.lock().introspection.unwrap_or((result.depth, result.complexity));
        if complexity > self.limits.max_complexity {
            return Err(vec![ServerError::new(TOO_COMPLEX, None)]);
        }
        if depth > self.limits.max_depth {
            return Err(vec![ServerError::new(TOO_DEEP, None)]);
        }
        Ok(result)
    }
}

/// The depth and complexity of the operation if it selects introspection fields only, not
/// counting `ofType`; `None` for any other operation, or one too large to measure.
fn introspection_cost(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<(usize, usize)> {
    let (_, op) = operation(document, operation_name)?;
    if op.node.ty != OperationType::Query {
        return None;
    }
    let mut walk = Walk { fragments: &document.fragments, walked: 0, stack: Vec::new() };
    if !walk.root_is_introspection(&op.node.selection_set.node)? {
        return None;
    }
    let (depth, complexity) = walk.measure(&op.node.selection_set.node)?;
    Some((depth, complexity))
}

type Fragments = HashMap<Name, Positioned<async_graphql::parser::types::FragmentDefinition>>;

struct Walk<'d> {
    fragments: &'d Fragments,
    walked: usize,
    /// Fragments being expanded (a cycle is a validation error; it just stops the walk here).
    stack: Vec<&'d str>,
}

impl<'d> Walk<'d> {
    fn step(&mut self) -> Option<()> {
        self.walked += 1;
        (self.walked <= MAX_WALK).then_some(())
    }

    fn root_is_introspection(&mut self, set: &'d SelectionSet) -> Option<bool> {
        for item in &set.items {
            self.step()?;
            let ok = match &item.node {
                Selection::Field(f) => f.node.name.node.starts_with("__"),
                Selection::InlineFragment(i) => self.root_is_introspection(&i.node.selection_set.node)?,
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match self.fragments.get(name) {
                        Some(f) if !self.stack.contains(&name) => {
                            self.stack.push(name);
                            let ok = self.root_is_introspection(&f.node.selection_set.node)?;
                            self.stack.pop();
                            ok
                        }
                        _ => false,
                    }
                }
            };
            if !ok {
                return Some(false);
            }
        }
        Some(true)
    }

    /// `(depth, complexity)` of a selection set, as async-graphql counts them (each field adds 1
    /// to both), except that `ofType` fields add nothing.
    fn measure(&mut self, set: &'d SelectionSet) -> Option<(usize, usize)> {
        let mut depth = 0;
        let mut complexity = 0;
        for item in &set.items {
            self.step()?;
            let (d, c) = match &item.node {
                Selection::Field(f) => {
                    let (d, c) = self.measure(&f.node.selection_set.node)?;
                    if f.node.name.node == "ofType" { (d, c) } else { (d + 1, c + 1) }
                }
                Selection::InlineFragment(i) => self.measure(&i.node.selection_set.node)?,
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match self.fragments.get(name) {
                        Some(f) if !self.stack.contains(&name) => {
                            self.stack.push(name);
                            let dc = self.measure(&f.node.selection_set.node)?;
                            self.stack.pop();
                            dc
                        }
                        _ => (0, 0),
                    }
                }
            };
            depth = depth.max(d);
            complexity += c;
        }
        Some((depth, complexity))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The introspection query of GraphiQL 3 (graphql-js `getIntrospectionQuery` with
    /// descriptions and deprecated input values): nine nested `ofType`.
    pub(crate) const GRAPHIQL_INTROSPECTION: &str = r"
    query IntrospectionQuery {
      __schema {
        description
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types { ...FullType }
        directives {
          name
          description
          isRepeatable
          locations
          args(includeDeprecated: true) { ...InputValue }
        }
      }
    }
    fragment FullType on __Type {
      kind
      name
      description
      specifiedByURL
      isOneOf
      fields(includeDeprecated: true) {
        name
        description
        args(includeDeprecated: true) { ...InputValue }
        type { ...TypeRef }
        isDeprecated
        deprecationReason
      }
      inputFields(includeDeprecated: true) { ...InputValue }
      interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { ...TypeRef }
    }
    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
      isDeprecated
      deprecationReason
    }
    fragment TypeRef on __Type {
      kind name
      ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
    }";

    fn cost(q: &str) -> Option<(usize, usize)> {
        introspection_cost(&async_graphql::parser::parse_query(q).unwrap(), None)
    }

    #[test]
    fn graphiql_introspection_fits_the_default_limits() {
        let (depth, complexity) = cost(GRAPHIQL_INTROSPECTION).unwrap();
        assert_eq!(depth, 6);
        assert!(complexity <= 256, "{complexity}");
    }

    #[test]
    fn only_introspection_operations_are_measured() {
        assert_eq!(cost("{ books { id } }"), None);
        assert_eq!(cost("{ __typename books { id } }"), None);
        assert_eq!(cost("{ ...F } fragment F on Query { books { id } }"), None);
        assert_eq!(cost("{ __typename }"), Some((1, 1)));
        assert_eq!(cost("{ ...F } fragment F on Query { __schema { types { name } } }"), Some((3, 3)));
        // Lists below introspection fields still count.
        assert_eq!(cost("{ __schema { types { fields { type { fields { name } } } } } }"), Some((6, 6)));
        assert_eq!(cost("{ __type(name: \"A\") { ofType { fields { type { ofType { name } } } } } }"), Some((4, 4)));
        // A fragment cycle (a validation error) does not loop.
        assert_eq!(cost("{ __schema { types { ...A } } } fragment A on __Type { name ...A }"), Some((3, 3)));
        let huge = format!("{{ __typename {} }}", "a: __typename ".repeat(MAX_WALK));
        assert_eq!(cost(&huge), None);
    }
}
