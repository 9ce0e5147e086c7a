use chrono::{DateTime, SubsecRound, Utc};
use microframework::core::Error;
use microframework::http::Pagination;
use uuid::Uuid;

use crate::models::{NewUser, UpdateUser, User};
use crate::repositories::UserRepository;

/// Use cases of users.
#[derive(Clone, Debug)]
pub struct UserService {
    repo: UserRepository,
}

fn now() -> DateTime<Utc> {
    // Microseconds: what every supported database stores.
    Utc::now().trunc_subsecs(6)
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl UserService {
    /// A service over `repo`.
    pub fn new(repo: UserRepository) -> Self {
        Self { repo }
    }

    /// A page of users and the total count.
    pub async fn list(&self, page: Pagination) -> Result<(Vec<User>, u64), Error> {
        Ok(self.repo.list(page.offset(), page.limit()).await?)
    }

    /// The user with `id`.
    pub async fn get(&self, id: Uuid) -> Result<User, Error> {
        self.repo.get(id).await?.ok_or_else(|| Error::not_found(format!("User {id} does not exist.")))
    }

    /// Creates a user; a taken email is a conflict.
    pub async fn create(&self, new: NewUser) -> Result<User, Error> {
        let now = now();
        let user = User {
            id: Uuid::now_v7(),
            name: new.name.trim().to_owned(),
            email: normalize_email(&new.email),
            created_at: now,
            updated_at: now,
        };
        self.repo.insert(&user).await.map_err(|e| {
            if e.is_unique_violation() {
                Error::conflict(format!("A user with email {} already exists.", user.email))
            } else {
                e.into()
            }
        })?;
        Ok(user)
    }

    /// Applies `changes` to the user with `id`.
    pub async fn update(&self, id: Uuid, changes: UpdateUser) -> Result<User, Error> {
        let mut user = self.get(id).await?;
        if let Some(name) = changes.name {
            user.name = name.trim().to_owned();
        }
        if let Some(email) = changes.email {
            user.email = normalize_email(&email);
        }
        user.updated_at = now();
        let email = user.email.clone();
        let found = self.repo.update(&user).await.map_err(|e| {
            if e.is_unique_violation() {
                Error::conflict(format!("A user with email {email} already exists."))
            } else {
                e.into()
            }
        })?;
        if found { Ok(user) } else { Err(Error::not_found(format!("User {id} does not exist."))) }
    }

    /// Deletes the user with `id`.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        if self.repo.delete(id).await? { Ok(()) } else { Err(Error::not_found(format!("User {id} does not exist."))) }
    }
}
