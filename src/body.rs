//! The one body type every response uses: a boxed, streaming body of `Bytes`, so proxied
//! bodies flow through without buffering and gateway-made bodies fit the same type.
//!
//! [`client_body`] wraps a client's request body on its way upstream: it bounds the wait for
//! each piece of the body (`server.body_read_timeout_secs`) and records why the body failed
//! ([`BodyFault`]), so the forwarder can answer 408 or 400 instead of blaming the upstream.
//!
//! [`counted`] wraps a response body to count the bytes sent and report them when it is
//! dropped (the access log is written then).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Boxes any streaming body (e.g. hyper's `Incoming`) without reading it.
pub fn stream<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// A response body that counts the data bytes it yields and reports the count once, when it
/// is dropped (after its end, or when the client went away first). For the access log.
pub fn counted(inner: Body, on_end: impl FnOnce(u64) + Send + Sync + 'static) -> Body {
    Counted {
        inner,
        bytes: 0,
        on_end: Some(Box::new(on_end)),
    }
    .boxed()
}

type OnEnd = Box<dyn FnOnce(u64) + Send + Sync>;

struct Counted {
    inner: Body,
    bytes: u64,
    on_end: Option<OnEnd>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.bytes);
        }
    }
}

/// Why a client's request body could not be read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyFault {
    /// Nothing arrived for `server.body_read_timeout_secs` while the body was being read.
    #[error("the client sent no request body data in time")]
    Stalled,
    /// The client's framing was invalid (e.g. a bad chunk size) or the body was cut short.
    #[error("the request body is malformed or incomplete")]
    Malformed,
}

/// The fault of a body made by [`client_body`], once there is one.
#[derive(Clone, Debug, Default)]
pub struct BodyWatch(Arc<OnceLock<BodyFault>>);

impl BodyWatch {
    pub fn fault(&self) -> Option<BodyFault> {
        self.0.get().copied()
    }
}

pin_project_lite::pin_project! {
    /// A client's request body with a per-read inactivity timeout.
    struct ClientBody {
        inner: Incoming,
        timeout: Duration,
        // Armed while waiting for the client; disarmed when a frame arrives, so time spent
        // while the upstream is not reading does not count.
        armed: bool,
        #[pin]
        sleep: Sleep,
        watch: BodyWatch,
    }
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(fault) = this.watch.fault() {
            return Poll::Ready(Some(Err(fault.into())));
        }
        match Pin::new(&mut *this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.armed = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let _ = this.watch.0.set(BodyFault::Malformed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if !*this.armed {
                    *this.armed = true;
                    this.sleep.as_mut().reset(Instant::now() + *this.timeout);
                }
                match this.sleep.poll(cx) {
                    Poll::Ready(()) => {
                        let _ = this.watch.0.set(BodyFault::Stalled);
                        Poll::Ready(Some(Err(BodyFault::Stalled.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Boxes a client's request body for forwarding, with a `timeout` on every wait for data, and
/// the [`BodyWatch`] that tells why it failed.
pub fn client_body(incoming: Incoming, timeout: Duration) -> (Body, BodyWatch) {
    let watch = BodyWatch::default();
    let body = ClientBody {
        inner: incoming,
        timeout,
        armed: false,
        sleep: tokio::time::sleep(timeout),
        watch: watch.clone(),
    };
    (body.boxed(), watch)
}
