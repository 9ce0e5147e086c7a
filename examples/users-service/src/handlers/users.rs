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
    responses((status = 200, description = "A page of users", body = Page<User>),
              (status = 400, description = "Invalid pagination", content_type = "application/problem+json")))]
async fn list_users(State(svc): State<UserService>, page: Pagination) -> Result<Json<Page<User>>, ApiError> {
    let (items, total) = svc.list(page).await?;
    Ok(Json(Page::new(items, page, total)))
}

/// Creates a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, description = "Created", body = User),
              (status = 409, description = "Email taken", content_type = "application/problem+json"),
              (status = 422, description = "Invalid payload", content_type = "application/problem+json")))]
async fn create_user(
    State(svc): State<UserService>,
    Valid(new): Valid<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    let user = svc.create(new).await?;
    let location = format!("/users/{}", user.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(user)))
}

/// Reads a user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = User),
              (status = 404, description = "No such user", content_type = "application/problem+json")))]
async fn get_user(State(svc): State<UserService>, Path(id): Path<Uuid>) -> Result<Json<User>, ApiError> {
    Ok(Json(svc.get(id).await?))
}

/// Updates a user.
#[utoipa::path(put, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")), request_body = UpdateUser,
    responses((status = 200, description = "Updated", body = User),
              (status = 404, description = "No such user", content_type = "application/problem+json"),
              (status = 409, description = "Email taken", content_type = "application/problem+json"),
              (status = 422, description = "Invalid payload", content_type = "application/problem+json")))]
async fn update_user(
    State(svc): State<UserService>,
    Path(id): Path<Uuid>,
    Valid(changes): Valid<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(svc.update(id, changes).await?))
}

/// Deletes a user. Requires a bearer token with the `admin` role.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
              (status = 401, description = "No valid token", content_type = "application/problem+json"),
              (status = 403, description = "Not an admin", content_type = "application/problem+json"),
              (status = 404, description = "No such user", content_type = "application/problem+json")))]
async fn delete_user(
    State(svc): State<UserService>,
    claims: Claims,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if !claims.has_role("admin") {
        return Err(ApiError::new(ErrorKind::PermissionDenied, "Deleting users requires the admin role."));
    }
    svc.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
