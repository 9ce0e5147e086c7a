//! Limits: the size of request messages, and the number of calls served at once per connection.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Layer that rejects request messages larger than a limit.
///
/// It reads the length prefix of every gRPC message in the request body; a message announcing
/// more than the limit fails the request body with `OUT_OF_RANGE` (the code tonic uses for its own
/// limit) before the message is buffered, which the handler's decoder reports to the client. This
/// applies to every service, including those built without
/// [`with_limits!`](crate::with_limits). For compressed messages the limit applies to the
/// compressed size; tonic checks the decompressed size against its own per-server limit.
#[derive(Clone, Debug)]
pub struct DecodeLimitLayer {
    limit: usize,
}

impl DecodeLimitLayer {
    /// Messages larger than `limit` bytes are rejected.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for DecodeLimitLayer {
    type Service = DecodeLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DecodeLimit { inner, limit: self.limit }
    }
}

/// Service of [`DecodeLimitLayer`].
#[derive(Clone, Debug)]
pub struct DecodeLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, B> Service<Request<B>> for DecodeLimit<S>
where
    S: Service<Request<LimitedBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let limit = self.limit;
        self.inner.call(req.map(|inner| LimitedBody { inner, limit, header: [0; 5], filled: 0, remaining: 0 }))
    }
}

pin_project! {
    /// Request body of [`DecodeLimit`].
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        limit: usize,
        // The 5-byte prefix being read: compression flag and big-endian length.
        header: [u8; 5],
        filled: usize,
        // Bytes of the current message still to come.
        remaining: usize,
    }
}

/// Follows the message framing through `data`; the length of a message larger than `limit`.
fn scan(data: &[u8], limit: usize, header: &mut [u8; 5], filled: &mut usize, remaining: &mut usize) -> Option<usize> {
    let mut data = data;
    while !data.is_empty() {
        if *remaining > 0 {
            let n = (*remaining).min(data.len());
            *remaining -= n;
            data = &data[n..];
            continue;
        }
        let n = (5 - *filled).min(data.len());
        header[*filled..*filled + n].copy_from_slice(&data[..n]);
        *filled += n;
        data = &data[n..];
        if *filled == 5 {
            *filled = 0;
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if len > limit {
                return Some(len);
            }
            *remaining = len;
        }
    }
    None
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        match std::task::ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && let Some(len) = scan(data.chunk(), *this.limit, this.header, this.filled, this.remaining)
                {
                    let limit = *this.limit;
                    let status = Status::out_of_range(format!(
                        "Error, decoded message length too large: found {len} bytes, the limit is: {limit} bytes"
                    ));
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

type Connections = Arc<Mutex<HashMap<SocketAddr, Arc<Semaphore>>>>;

/// Layer that limits how many calls each connection has in progress; further calls wait.
///
/// Connections are told apart by the peer address that the server puts in the request
/// extensions (`ConnectInfo<SocketAddr>`, as `microframework_http::server::serve` does); without
/// it the limit does not apply. A call holds its slot until its response ends, so open streams
/// count.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimitLayer {
    limit: Option<usize>,
    connections: Connections,
}

impl ConcurrencyLimitLayer {
    /// At most `limit` calls per connection; `None` for no limit.
    pub fn new(limit: Option<usize>) -> Self {
        Self { limit: limit.filter(|l| *l > 0), connections: Arc::default() }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit { inner, limit: self.limit, connections: self.connections.clone() }
    }
}

/// Service of [`ConcurrencyLimitLayer`].
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    limit: Option<usize>,
    connections: Connections,
}

/// A slot of a connection; frees the connection's entry when its last slot is released.
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    semaphore: Arc<Semaphore>,
    addr: SocketAddr,
    connections: Connections,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and this slot hold the semaphore: nobody is using or waiting for it.
        if Arc::strong_count(&self.semaphore) == 2 {
            map.remove(&self.addr);
        }
    }
}

type Acquire = Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>;

impl<S, B, ResB> Service<Request<B>> for ConcurrencyLimit<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
{
    type Response = Response<LimitBody<ResB>>;
    type Error = S::Error;
    type Future = LimitFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (Some(limit), Some(addr)) = (self.limit, req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0))
        else {
            return LimitFuture { state: LimitState::Calling { fut: self.inner.call(req), slot: None } };
        };
        let semaphore = {
            let mut map = self.connections.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(addr).or_insert_with(|| Arc::new(Semaphore::new(limit))).clone()
        };
        let slot = |permit| Slot { permit, semaphore: semaphore.clone(), addr, connections: self.connections.clone() };
        match semaphore.clone().try_acquire_owned() {
            Ok(permit) => {
                LimitFuture { state: LimitState::Calling { fut: self.inner.call(req), slot: Some(slot(Some(permit))) } }
            }
            Err(_) => {
                // Take the service that was made ready; leave a clone for the next call.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let acquire: Acquire = Box::pin({
                    let semaphore = semaphore.clone();
                    async move { semaphore.acquire_owned().await.ok() }
                });
                LimitFuture {
                    state: LimitState::Waiting { acquire, pending: Some((inner, req)), slot: Some(slot(None)) },
                }
            }
        }
    }
}

pin_project! {
    #[project = LimitProj]
    enum LimitState<S, B>
    where
        S: Service<Request<B>>,
    {
        // Waiting for a slot.
        Waiting { acquire: Acquire, pending: Option<(S, Request<B>)>, slot: Option<Slot> },
        // Calling the inner service.
        Calling { #[pin] fut: S::Future, slot: Option<Slot> },
    }
}

pin_project! {
    /// Response future of [`ConcurrencyLimit`].
    pub struct LimitFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: LimitState<S, B>,
    }
}

impl<S, B, ResB> Future for LimitFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Output = Result<Response<LimitBody<ResB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                LimitProj::Waiting { acquire, pending, slot } => {
                    let permit = std::task::ready!(acquire.as_mut().poll(cx));
                    let mut slot = slot.take();
                    if let Some(s) = &mut slot {
                        s.permit = permit;
                    }
                    let Some((mut inner, req)) = pending.take() else {
                        return Poll::Pending;
                    };
                    let fut = inner.call(req);
                    state.set(LimitState::Calling { fut, slot });
                }
                LimitProj::Calling { fut, slot } => {
                    let res = std::task::ready!(fut.poll(cx))?;
                    let slot = slot.take();
                    return Poll::Ready(Ok(res.map(|inner| LimitBody { inner, _slot: slot })));
                }
            }
        }
    }
}

pin_project! {
    /// Response body of [`ConcurrencyLimit`]: holds the call's slot until the response ends.
    pub struct LimitBody<B> {
        #[pin]
        inner: B,
        _slot: Option<Slot>,
    }
}

impl<B: Default> Default for LimitBody<B> {
    fn default() -> Self {
        Self { inner: B::default(), _slot: None }
    }
}

impl<B: Body> Body for LimitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32, body: usize) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend(std::iter::repeat_n(7u8, body));
        v
    }

    #[test]
    fn finds_oversized_messages_across_chunks() {
        let mut data = frame(3, 3);
        data.extend(frame(10, 10));
        data.extend(frame(100, 0));
        let (mut header, mut filled, mut remaining) = ([0u8; 5], 0, 0);
        // Feed one byte at a time: the prefix of the third message is split across chunks.
        let mut found = None;
        for b in &data {
            if let Some(len) = scan(std::slice::from_ref(b), 50, &mut header, &mut filled, &mut remaining) {
                found = Some(len);
                break;
            }
        }
        assert_eq!(found, Some(100));
        let (mut header, mut filled, mut remaining) = ([0u8; 5], 0, 0);
        assert_eq!(scan(&data[..18], 50, &mut header, &mut filled, &mut remaining), None);
    }
}
