//! The N+1 case: the authors of N books are loaded with one loader call.

use std::sync::atomic::Ordering;

use crate::common::{query, spawn};

#[tokio::test]
async fn authors_of_every_book_are_loaded_in_one_batch() {
    let (app, lib) = spawn("").await;
    let body = query(&app, "{ books { id author { id name } } }").await;
    let books = body["data"]["books"].as_array().unwrap();
    assert_eq!(books.len(), 10);
    for book in books {
        assert_eq!(book["author"]["id"], book["id"], "{book}");
    }
    assert_eq!(lib.loader_calls.load(Ordering::SeqCst), 1, "10 authors, 1 loader call");
    assert_eq!(*lib.loader_batches.lock().unwrap(), vec![10]);

    // Nested: authors -> books -> author is one more batch per level, not one call per book.
    let body = query(&app, "{ books { author { books { author { name } } } } }").await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(lib.loader_calls.load(Ordering::SeqCst), 3);
}
