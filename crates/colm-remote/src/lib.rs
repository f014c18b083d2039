//! colm-remote: models on other servers, the remote layer (DESIGN.md §3).
//!
//! - [`Link`]: the HTTP link to one [`Endpoint`] (deadline, retries of transient failures,
//!   zstd bodies, the meaning of HTTP errors kept), shared by the models here and by the
//!   device's guidance exchanges (`colm-client`).
//! - [`RemoteChat`]: a model on a colm server or on any OpenAI-compatible endpoint (vLLM,
//!   llama-server, Ollama, a hosted API) as a [`colm_core::ChatModel`].
//! - [`Upstream`]: such an endpoint as `colm serve --upstream` names it; [`Replicas`]: several
//!   replicas of one upstream behind one name (balancing, failover, cool-down).

pub mod chat;
mod complete;
pub mod link;
pub mod replicas;
pub mod upstream;

pub use chat::RemoteChat;
pub use link::{Endpoint, Failure, Link, Reply};
pub use replicas::Replicas;
pub use upstream::{Upstream, UpstreamSpecError};

/// Test helpers shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{Read, Write};
    use std::sync::Arc;

    /// A real HTTP server on loopback answering every request with `status`, `headers` and
    /// `body`; returns its base URL and the count of requests it answered.
    pub(crate) fn responder(
        status: &'static str,
        headers: &'static str,
        body: &'static str,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut request = vec![0; length];
                reader.read_exact(&mut request).unwrap();
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        (url, count)
    }
}
