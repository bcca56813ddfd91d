//! A client's reset of its request stream is an error, never the end of the
//! stream. tonic's server decoder reads a body error of code `Cancelled`
//! (how an HTTP/2 `RST_STREAM(CANCEL)` arrives, and what hyper's client sends
//! when a call is dropped mid-request) as the clean end of a request stream
//! (`tonic::codec::decode`, "Direction::Request && Code::Cancelled"), so a
//! PutObject cancelled mid-body looked finished with the messages that had
//! arrived, and was published cut short. Every service is wrapped here so
//! that such an error stays an error.
//!
//! Invariant: a request body that a reset ended yields an error to the
//! handler, whose code is not `Cancelled`. A reset with `NO_ERROR` never
//! reaches this wrapper (hyper ends the body cleanly): it is a stream the
//! client chose to end, bound only by the end message or header digest it
//! declared (PutObject).

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::codegen::{Bytes, Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};

/// A service whose requests' bodies turn a client reset into an error.
#[derive(Clone, Debug)]
pub(crate) struct ResetIsError<S>(pub(crate) S);

impl<S: NamedService> NamedService for ResetIsError<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for ResetIsError<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> S::Future {
        self.0.call(request.map(|body| Body::new(ResetBody(body))))
    }
}

/// A request body whose `Cancelled` errors become `Aborted`.
#[derive(Debug)]
pub(crate) struct ResetBody(Body);

impl http_body::Body for ResetBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().0).poll_frame(cx).map(|frame| match frame {
            Some(Err(status)) if status.code() == Code::Cancelled => Some(Err(Status::aborted(format!(
                "the client reset its request stream before ending it: {}",
                status.message()
            )))),
            other => other,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use prost::bytes::Buf as _;
    use tonic::Streaming;
    use tonic::codec::{DecodeBuf, Decoder};

    use super::*;

    /// Frames, then whatever ends them, as hyper delivers a request body.
    struct Delivered(VecDeque<Result<Frame<Bytes>, Status>>);

    impl http_body::Body for Delivered {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            Poll::Ready(self.get_mut().0.pop_front())
        }
    }

    /// Messages as their bytes.
    struct Raw;

    impl Decoder for Raw {
        type Item = Bytes;
        type Error = Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
            Ok(Some(src.copy_to_bytes(src.remaining())))
        }
    }

    /// One whole gRPC message, then `end`.
    fn body(end: Option<Status>) -> Body {
        let mut message = vec![0u8];
        message.extend_from_slice(&5u32.to_be_bytes());
        message.extend_from_slice(b"whole");
        let mut frames = VecDeque::from([Ok(Frame::data(Bytes::from(message)))]);
        frames.extend(end.map(Err));
        Body::new(Delivered(frames))
    }

    /// What a handler reads: its messages, then how the stream ended.
    async fn read(mut stream: Streaming<Bytes>) -> (Vec<Bytes>, Result<(), Code>) {
        let mut messages = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => return (messages, Ok(())),
                Err(status) => return (messages, Err(status.code())),
            }
        }
    }

    #[tokio::test]
    async fn a_reset_request_stream_ends_in_an_error_not_as_if_complete() {
        let whole = vec![Bytes::from_static(b"whole")];
        let reset = || Some(Status::cancelled("stream reset"));
        // The cause: tonic alone reads the reset as the end of the stream.
        let bare = Streaming::new_request(Raw, body(reset()), None, None);
        assert_eq!(read(bare).await, (whole.clone(), Ok(())));
        let wrapped = Streaming::new_request(Raw, ResetBody(body(reset())), None, None);
        assert_eq!(read(wrapped).await, (whole.clone(), Err(Code::Aborted)));
        // Other errors and a clean end pass unchanged.
        let broken = Streaming::new_request(Raw, ResetBody(body(Some(Status::unavailable("gone")))), None, None);
        assert_eq!(read(broken).await, (whole.clone(), Err(Code::Unavailable)));
        let ended = Streaming::new_request(Raw, ResetBody(body(None)), None, None);
        assert_eq!(read(ended).await, (whole, Ok(())));
    }
}
