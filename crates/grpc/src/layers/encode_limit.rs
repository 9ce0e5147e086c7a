//! The size limit of response messages (`grpc.max_encoding_message_size`), for every service.
//!
//! tonic enforces a response limit only on servers built with `max_encoding_message_size`
//! ([`with_limits!`](crate::with_limits)); this layer applies the configured one to all of them.
//! It follows the message framing of the response body: a message announcing more than the limit
//! is not sent; the response ends there with `OUT_OF_RANGE` trailers (the code tonic uses for its
//! own limit), and the messages before it are delivered intact.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tonic::Status;
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Layer that stops response messages larger than a limit.
#[derive(Clone, Debug)]
pub struct EncodeLimitLayer {
    limit: usize,
}

impl EncodeLimitLayer {
    /// Response messages larger than `limit` bytes end the call with `OUT_OF_RANGE`.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for EncodeLimitLayer {
    type Service = EncodeLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        EncodeLimit { inner, limit: self.limit }
    }
}

/// Service of [`EncodeLimitLayer`].
#[derive(Clone, Debug)]
pub struct EncodeLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for EncodeLimit<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<EncodeLimitBody<ResB>>;
    type Error = S::Error;
    type Future = EncodeLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        EncodeLimitFuture { inner: self.inner.call(req), limit: self.limit }
    }
}

pin_project! {
    /// Response future of [`EncodeLimit`].
    pub struct EncodeLimitFuture<F> {
        #[pin]
        inner: F,
        limit: usize,
    }
}

impl<F, ResB, E> Future for EncodeLimitFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<EncodeLimitBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let limit = *this.limit;
        this.inner.poll(cx).map(|r| r.map(|res| res.map(|inner| EncodeLimitBody::new(inner, limit))))
    }
}

pin_project! {
    /// Response body of [`EncodeLimit`].
    pub struct EncodeLimitBody<B> {
        #[pin]
        inner: B,
        limit: usize,
        // The 5-byte prefix of the next message, held back until it is complete.
        header: [u8; 5],
        filled: usize,
        // Bytes of the current message still to pass.
        remaining: usize,
        // The trailers that end the response once a message was too large.
        stopped: Option<Option<HeaderMap>>,
    }
}

impl<B> EncodeLimitBody<B> {
    fn new(inner: B, limit: usize) -> Self {
        Self { inner, limit, header: [0; 5], filled: 0, remaining: 0, stopped: None }
    }
}

impl<B: Default> Default for EncodeLimitBody<B> {
    fn default() -> Self {
        Self::new(B::default(), usize::MAX)
    }
}

/// What to forward of a data chunk.
enum Scan {
    /// The whole chunk, as it is.
    All,
    /// These bytes instead (a held-back prefix completed, or a partial prefix held back).
    Some(Bytes),
    /// These bytes, then stop: the next message announces `len` bytes.
    TooLarge { before: Bytes, len: usize },
}

/// Follows the framing of `data`, holding back an incomplete message prefix (in `header`) until
/// the next chunk completes it.
fn scan(data: &Bytes, limit: usize, header: &mut [u8; 5], filled: &mut usize, remaining: &mut usize) -> Scan {
    // Bytes of a prefix held back from the previous chunk.
    let held = *filled;
    // The held bytes, once their prefix completed within the limit, then `data[..cut]`.
    let mut out: Option<BytesMut> = None;
    let mut i = 0;
    let mut cut = 0;
    // Where the current prefix began in `data`; `None`: in an earlier chunk.
    let mut prefix_start = None;
    while i < data.len() {
        if *remaining > 0 {
            let n = (*remaining).min(data.len() - i);
            *remaining -= n;
            i += n;
            cut = i;
            continue;
        }
        if *filled == 0 {
            prefix_start = Some(i);
        }
        let n = (5 - *filled).min(data.len() - i);
        header[*filled..*filled + n].copy_from_slice(&data[i..i + n]);
        *filled += n;
        i += n;
        if *filled < 5 {
            break;
        }
        *filled = 0;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > limit {
            let before = match prefix_start {
                // What precedes the prefix goes; the prefix and its message do not.
                Some(start) => {
                    let mut b = out.unwrap_or_default();
                    b.extend_from_slice(&data[..start]);
                    b.freeze()
                }
                // The prefix began in an earlier chunk and was held back: nothing of it was sent.
                None => Bytes::new(),
            };
            return Scan::TooLarge { before, len };
        }
        if prefix_start.is_none() && held > 0 {
            let mut b = BytesMut::with_capacity(held + data.len());
            b.extend_from_slice(&header[..held]);
            out = Some(b);
        }
        *remaining = len;
        cut = i;
    }
    match out {
        None if cut == data.len() => Scan::All,
        None => Scan::Some(data.slice(..cut)),
        Some(mut b) => {
            b.extend_from_slice(&data[..cut]);
            Scan::Some(b.freeze())
        }
    }
}

fn too_large_trailers(len: usize, limit: usize) -> HeaderMap {
    let status = Status::out_of_range(format!(
        "Error, encoded message length too large: found {len} bytes, the limit is: {limit} bytes"
    ));
    tracing::warn!(
        len,
        limit,
        "a response message exceeds grpc.max_encoding_message_size; the call ends with OUT_OF_RANGE"
    );
    let mut trailers = HeaderMap::new();
    let _ = status.add_header(&mut trailers);
    trailers
}

impl<B> Body for EncodeLimitBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Some(trailers) = this.stopped {
            return Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        loop {
            let frame = match std::task::ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => return Poll::Ready(None),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            match scan(&data, *this.limit, this.header, this.filled, this.remaining) {
                Scan::All => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Scan::Some(bytes) if bytes.is_empty() => continue,
                Scan::Some(bytes) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Scan::TooLarge { before, len } => {
                    let trailers = too_large_trailers(len, *this.limit);
                    if before.is_empty() {
                        *this.stopped = Some(None);
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    *this.stopped = Some(Some(trailers));
                    return Poll::Ready(Some(Ok(Frame::data(before))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.stopped, Some(None)) || (self.stopped.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.stopped.is_some() { SizeHint::default() } else { self.inner.size_hint() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize, fill: u8) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        m.extend(std::iter::repeat_n(fill, len));
        m
    }

    /// Feeds `chunks` through the scanner; the bytes forwarded and the length that stopped it.
    fn run(chunks: &[&[u8]], limit: usize) -> (Vec<u8>, Option<usize>) {
        let (mut header, mut filled, mut remaining) = ([0u8; 5], 0, 0);
        let mut sent = Vec::new();
        for chunk in chunks {
            let data = Bytes::copy_from_slice(chunk);
            match scan(&data, limit, &mut header, &mut filled, &mut remaining) {
                Scan::All => sent.extend_from_slice(&data),
                Scan::Some(b) => sent.extend_from_slice(&b),
                Scan::TooLarge { before, len } => {
                    sent.extend_from_slice(&before);
                    return (sent, Some(len));
                }
            }
        }
        (sent, None)
    }

    #[test]
    fn messages_within_the_limit_pass_whatever_the_chunking() {
        let stream: Vec<u8> = [message(3, 1), message(0, 0), message(10, 2)].concat();
        for split in 0..=stream.len() {
            for second in split..=stream.len() {
                let chunks = [&stream[..split], &stream[split..second], &stream[second..]];
                assert_eq!(run(&chunks, 10), (stream.clone(), None), "split at {split} and {second}");
            }
        }
    }

    #[test]
    fn a_message_over_the_limit_stops_the_stream_after_the_complete_ones() {
        let ok = message(4, 1);
        let stream: Vec<u8> = [ok.clone(), message(11, 2), message(1, 3)].concat();
        for split in 0..=stream.len() {
            let chunks = [&stream[..split], &stream[split..]];
            assert_eq!(run(&chunks, 10), (ok.clone(), Some(11)), "split at {split}");
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytes, 10), (ok, Some(11)));
    }
}
