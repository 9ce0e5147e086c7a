use chrono::{DateTime, SubsecRound, Utc};
use microframework::core::Error;
use microframework::http::Pagination;
use uuid::Uuid;

use crate::models::{NewUser, UpdateUser, User};
use crate::repositories::UserRepository;

/// Use cases of users.
#[derive(Clone, Debug)]
pub struct UserService {
    repository: UserRepository,
}

/// The current time, truncated to microseconds (what every supported database stores).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Trims surrounding whitespace; an empty description becomes none.
fn clean(name: &str, description: Option<String>) -> (String, Option<String>) {
    let description = description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    (name.trim().to_owned(), description)
}

fn conflict_or(e: microframework::data::DataError, name: &str) -> Error {
    if e.is_unique_violation() {
        Error::conflict(format!("a user named {name} already exists"))
    } else {
        e.into()
    }
}

impl UserService {
    /// A service over `repository`.
    pub fn new(repository: UserRepository) -> Self {
        Self { repository }
    }

    /// A page of items and the total count.
    pub async fn list(&self, page: Pagination) -> Result<(Vec<User>, u64), Error> {
        Ok(self.repository.list(page.offset(), page.limit()).await?)
    }

    /// The item with `id`.
    pub async fn get(&self, id: Uuid) -> Result<User, Error> {
        self.repository
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("user {id} does not exist")))
    }

    /// Creates an item; a taken name is a conflict.
    pub async fn create(&self, new: NewUser) -> Result<User, Error> {
        let (name, description) = clean(&new.name, new.description);
        if name.is_empty() {
            return Err(Error::validation(vec![
                microframework::core::FieldError::new("name", "must not be blank"),
            ]));
        }
        let now = now();
        let item = User {
            id: Uuid::now_v7(),
            name,
            description,
            created_at: now,
            updated_at: now,
        };
        self.repository
            .insert(&item)
            .await
            .map_err(|e| conflict_or(e, &item.name))?;
        Ok(item)
    }

    /// Applies `changes` to the item with `id`.
    pub async fn update(&self, id: Uuid, changes: UpdateUser) -> Result<User, Error> {
        let mut item = self.get(id).await?;
        if let Some(name) = changes.name {
            let (name, _) = clean(&name, None);
            if name.is_empty() {
                return Err(Error::validation(vec![
                    microframework::core::FieldError::new("name", "must not be blank"),
                ]));
            }
            item.name = name;
        }
        if let Some(description) = changes.description {
            item.description = clean("", Some(description)).1;
        }
        item.updated_at = now();
        let found = self
            .repository
            .update(&item)
            .await
            .map_err(|e| conflict_or(e, &item.name))?;
        if found {
            Ok(item)
        } else {
            Err(Error::not_found(format!("user {id} does not exist")))
        }
    }

    /// Deletes the item with `id`.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        if self.repository.delete(id).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("user {id} does not exist")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_trims_and_drops_blank_descriptions() {
        assert_eq!(clean("  a  ", Some("  ".into())), ("a".to_owned(), None));
        assert_eq!(
            clean("b", Some(" text ".into())),
            ("b".to_owned(), Some("text".to_owned()))
        );
    }

    #[test]
    fn timestamps_have_microsecond_precision() {
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
    }
}
