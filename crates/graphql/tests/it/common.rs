//! The example schema (books and authors), the service around it, and HTTP/WebSocket helpers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{ComplexObject, Context, Object, Result, Schema, SimpleObject, Subscription};
use futures_util::{SinkExt, Stream, StreamExt};
use microframework::Service;
use microframework_core::{Error, FieldError};
use microframework_graphql::{DataLoader, IntoGqlResult, Loader};
use microframework_testing::TestApp;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message;

pub(crate) const SECRET: &str = "graphql-test-secret-that-is-long-enough-0123";

#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub(crate) struct Book {
    pub(crate) id: u32,
    pub(crate) title: String,
    #[graphql(skip)]
    pub(crate) author_id: u32,
}

#[ComplexObject]
impl Book {
    /// Loaded through the DataLoader: one loader call for every author of a response.
    async fn author(&self, ctx: &Context<'_>) -> Result<Option<Author>> {
        let loader = ctx.data::<DataLoader<AuthorLoader>>()?;
        loader.load_one(self.author_id).await.map_err(|e| microframework_graphql::gql_error(&e))
    }
}

#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub(crate) struct Author {
    pub(crate) id: u32,
    pub(crate) name: String,
}

#[ComplexObject]
impl Author {
    async fn books(&self, ctx: &Context<'_>) -> Result<Vec<Book>> {
        let lib = ctx.data::<Arc<Library>>()?;
        Ok(lib.books().into_iter().filter(|b| b.author_id == self.id).collect())
    }
}

/// The in-memory store shared by the schema and the test.
pub(crate) struct Library {
    books: Mutex<Vec<Book>>,
    authors: HashMap<u32, Author>,
    pub(crate) added: broadcast::Sender<Book>,
    /// How many times the author loader ran, and the keys of each call.
    pub(crate) loader_calls: AtomicUsize,
    pub(crate) loader_batches: Mutex<Vec<usize>>,
}

impl Library {
    /// Ten authors, one book each.
    pub(crate) fn new() -> Arc<Self> {
        let authors: HashMap<u32, Author> =
            (1..=10).map(|id| (id, Author { id, name: format!("Author {id}") })).collect();
        let books = (1..=10).map(|id| Book { id, title: format!("Book {id}"), author_id: id }).collect();
        let (added, _) = broadcast::channel(64);
        Arc::new(Self {
            books: Mutex::new(books),
            authors,
            added,
            loader_calls: AtomicUsize::new(0),
            loader_batches: Mutex::new(Vec::new()),
        })
    }

    fn books(&self) -> Vec<Book> {
        self.books.lock().unwrap().clone()
    }

    /// Subscribers of `bookAdded`.
    pub(crate) fn subscribers(&self) -> usize {
        self.added.receiver_count()
    }
}

pub(crate) struct AuthorLoader(Arc<Library>);

impl Loader<u32> for AuthorLoader {
    type Value = Author;
    type Error = Arc<Error>;

    async fn load(&self, keys: &[u32]) -> std::result::Result<HashMap<u32, Author>, Self::Error> {
        self.0.loader_calls.fetch_add(1, Ordering::SeqCst);
        self.0.loader_batches.lock().unwrap().push(keys.len());
        Ok(keys.iter().filter_map(|k| self.0.authors.get(k).map(|a| (*k, a.clone()))).collect())
    }
}

pub(crate) struct Query;

#[Object]
impl Query {
    async fn books(&self, ctx: &Context<'_>) -> Result<Vec<Book>> {
        Ok(ctx.data::<Arc<Library>>()?.books())
    }

    async fn book(&self, ctx: &Context<'_>, id: u32) -> Result<Book> {
        let lib = ctx.data::<Arc<Library>>()?;
        lib.books()
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::not_found(format!("No book {id}.")))
            .into_gql()
    }

    /// The subject of the caller's token.
    async fn me(&self, ctx: &Context<'_>) -> Result<String> {
        let claims = microframework_graphql::claims(ctx)?;
        Ok(claims.subject().unwrap_or_default().to_owned())
    }

    async fn admin_only(&self, ctx: &Context<'_>) -> Result<bool> {
        microframework_graphql::require_role(ctx, "admin")?;
        Ok(true)
    }

    /// Always fails with an internal error whose cause must not reach the client.
    async fn broken(&self) -> Result<String> {
        Err::<String, _>(Error::internal(std::io::Error::other("db password=hunter2"))).into_gql()
    }
}

pub(crate) struct Mutation;

#[Object]
impl Mutation {
    async fn add_book(&self, ctx: &Context<'_>, title: String, author_id: u32) -> Result<Book> {
        let lib = ctx.data::<Arc<Library>>()?;
        if title.trim().is_empty() {
            return Err::<Book, _>(Error::validation(vec![FieldError::new("title", "must not be empty")])).into_gql();
        }
        if !lib.authors.contains_key(&author_id) {
            return Err::<Book, _>(Error::not_found(format!("No author {author_id}."))).into_gql();
        }
        let book = {
            let mut books = lib.books.lock().unwrap();
            let book = Book { id: books.len() as u32 + 1, title, author_id };
            books.push(book.clone());
            book
        };
        let _ = lib.added.send(book.clone());
        Ok(book)
    }
}

pub(crate) struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    async fn book_added(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = Book> + use<>> {
        let rx = ctx.data::<Arc<Library>>()?.added.subscribe();
        Ok(futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(book) => return Some((book, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }
}

/// The service: the books schema mounted with the crate's router and limits.
pub(crate) fn service(lib: Arc<Library>) -> Service {
    Service::new("graphql-it").router(move |ctx| {
        let loader = DataLoader::new(AuthorLoader(lib.clone()), tokio::spawn);
        // The `graphql` section's limits apply without the code asking for them.
        microframework_graphql::router(Schema::build(Query, Mutation, SubscriptionRoot).data(lib).data(loader), ctx)
    })
}

pub(crate) async fn spawn(yaml: &str) -> (TestApp, Arc<Library>) {
    let lib = Library::new();
    let app = TestApp::builder(service(lib.clone())).yaml(yaml.to_owned()).spawn().await;
    (app, lib)
}

pub(crate) fn jwt_yaml(extra: &str) -> String {
    format!("auth:\n  jwt:\n    secret: {SECRET}\n{extra}")
}

pub(crate) fn token(sub: &str, roles: &[&str]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({ "sub": sub, "exp": now + 300, "iat": now, "roles": roles });
    microframework_auth::JwtSigner::hs256(SECRET.as_bytes()).sign(&claims).unwrap()
}

/// `POST /graphql` with a JSON body; returns the status and the JSON body.
pub(crate) async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    let res = app.client().post(app.url("/graphql")).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// `POST /graphql` of `query` with a bearer token.
pub(crate) async fn post_with_token(app: &TestApp, query: &str, token: &str) -> (u16, Value) {
    let res = app
        .client()
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

pub(crate) async fn query(app: &TestApp, query: &str) -> Value {
    let (status, body) = post(app, json!({ "query": query })).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The `extensions.code` of the first error.
pub(crate) fn first_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"))
}

/// A GraphQL WebSocket client.
pub(crate) struct Ws {
    stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What the server sent.
#[derive(Debug)]
pub(crate) enum Incoming {
    Json(Value),
    Closed(Option<(u16, String)>),
}

impl Ws {
    pub(crate) async fn connect(app: &TestApp, protocol: &str, bearer: Option<&str>) -> Ws {
        let url = format!("{}/graphql/ws", app.base_url().replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(protocol).unwrap());
        if let Some(token) = bearer {
            request.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        }
        let (stream, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        Ws { stream }
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.stream.send(Message::text(message.to_string())).await.unwrap();
    }

    /// The next JSON message or close frame (pings are skipped), within 10 s.
    pub(crate) async fn recv(&mut self) -> Incoming {
        let next = async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Text(text))) => return Incoming::Json(serde_json::from_str(&text).unwrap()),
                    Some(Ok(Message::Close(frame))) => {
                        return Incoming::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Incoming::Closed(None),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), next).await.expect("no message from the server within 10s")
    }

    pub(crate) async fn recv_json(&mut self) -> Value {
        match self.recv().await {
            Incoming::Json(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// `connection_init` with `payload`, expecting `connection_ack`.
    pub(crate) async fn init(&mut self, payload: Value) {
        self.send(json!({ "type": "connection_init", "payload": payload })).await;
        let ack = self.recv_json().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }
}

/// Waits until `cond` holds (checking every 10 ms, at most 5 s).
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5s");
}

/// Percent-encodes a URL query value.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
