//! `/users`: list, create, read, update, delete.

use microframework::axum::extract::State;
use microframework::axum::http::{StatusCode, header};
use microframework::axum::response::IntoResponse;
use microframework::prelude::*;
use uuid::Uuid;

use crate::models::{NewUser, UpdateUser, User};
use crate::services::UserService;

/// The routes of this resource, documented for OpenAPI.
pub fn router(service: UserService) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .with_state(service)
}

/// Lists users, oldest first.
#[utoipa::path(get, path = "/users", tag = "users", params(Pagination),
    responses(
        (status = 200, description = "A page of users", body = Page<User>),
        (status = 400, description = "Invalid pagination", content_type = "application/problem+json"),
    ))]
async fn list_users(
    State(service): State<UserService>,
    page: Pagination,
) -> Result<Json<Page<User>>, ApiError> {
    let (items, total) = service.list(page).await?;
    Ok(Json(Page::new(items, page, total)))
}

/// Creates a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = User),
        (status = 401, description = "No valid bearer token", content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", content_type = "application/problem+json"),
        (status = 422, description = "Invalid payload", content_type = "application/problem+json"),
    ))]
async fn create_user(
    State(service): State<UserService>,
    _claims: Claims,
    Valid(new): Valid<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    let item = service.create(new).await?;
    let location = format!("/users/{}", item.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(item),
    ))
}

/// Reads a user.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Found", body = User),
        (status = 400, description = "Malformed id", content_type = "application/problem+json"),
        (status = 404, description = "Not found", content_type = "application/problem+json"),
    ))]
async fn get_user(
    State(service): State<UserService>,
    Path(id): Path<Uuid>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(service.get(id).await?))
}

/// Updates a user.
#[utoipa::path(put, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "Identifier")), request_body = UpdateUser,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = User),
        (status = 401, description = "No valid bearer token", content_type = "application/problem+json"),
        (status = 404, description = "Not found", content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", content_type = "application/problem+json"),
        (status = 422, description = "Invalid payload", content_type = "application/problem+json"),
    ))]
async fn update_user(
    State(service): State<UserService>,
    _claims: Claims,
    Path(id): Path<Uuid>,
    Valid(changes): Valid<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(service.update(id, changes).await?))
}

/// Deletes a user.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "Identifier")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid bearer token", content_type = "application/problem+json"),
        (status = 404, description = "Not found", content_type = "application/problem+json"),
    ))]
async fn delete_user(
    State(service): State<UserService>,
    _claims: Claims,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    service.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
