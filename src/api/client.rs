//! A client of `berth.sock`, for the CLI: whether an agent serves this state root, and its
//! answers, whole or as a stream of JSON lines.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to the agent at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the agent: {0}")]
    Http(#[from] hyper::Error),
    #[error("the agent's answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// The agent refused or failed; its message is for the user.
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
    #[error("the request: {0}")]
    Request(#[from] hyper::http::Error),
}

/// A connection to an agent's `berth.sock`.
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// The agent serving `socket`, if one answers there: a socket left by an agent that
    /// died refuses connections and means "no agent".
    pub fn find(socket: &Path) -> Option<Client> {
        std::os::unix::net::UnixStream::connect(socket)
            .ok()
            .map(|_| Client {
                path: socket.to_path_buf(),
            })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|source| ClientError::Connect {
                path: self.path.clone(),
                source,
            })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "berth")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = sender.send_request(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(ClientError::Refused { status, message })
    }

    /// A whole JSON answer.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.send(Method::GET, path, None).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// An answer of JSON lines, each handed to `each` as it arrives until `each` says stop
    /// (false) or the agent ends the answer.
    pub async fn post_lines<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        mut each: impl FnMut(T) -> bool,
    ) -> Result<(), ClientError> {
        let response = self
            .send(Method::POST, path, Some(serde_json::to_vec(body)?))
            .await?;
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if !each(serde_json::from_slice(&line)?) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
