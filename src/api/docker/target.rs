//! What the streaming endpoints (`logs`, `stats`, `exec`) share: finding the container a
//! path names, and reading the query string and a JSON body as dockerd does.

use std::collections::HashMap;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::api::{Body, Context, error};
use crate::state::record::ContainerRecord;

/// Largest JSON body accepted (an exec's command and environment).
const BODY_LIMIT: usize = 1 << 20;

/// A container as a path names it.
pub struct Found {
    pub record: ContainerRecord,
    /// The id Docker clients are shown.
    pub docker_id: String,
}

/// The container `name_or_id` names, as every Docker endpoint looks containers up
/// (`gather::lookup`: Docker or berth id, a unique prefix, a name with or without `/`).
pub async fn container(context: &Arc<Context>, name_or_id: &str) -> Result<Found, Response<Body>> {
    let context = context.clone();
    let wanted = name_or_id.to_string();
    let found =
        tokio::task::spawn_blocking(move || super::gather::one(&context.machine, &wanted)).await;
    match found {
        Ok(Ok(seen)) => Ok(Found {
            docker_id: seen.docker_id,
            record: seen.record,
        }),
        Ok(Err((status, message))) => Err(error(status, &message)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

/// The query string's parameters (the last of a repeated one wins).
pub fn query(request: &Request<Incoming>) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// A boolean parameter as dockerd reads one: absent, empty, `0`, `no`, `false` and `none`
/// are false, anything else true.
pub fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query.get(name).is_some_and(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        )
    })
}

/// The request's body as JSON of type `T`; an empty body is `T::default()`.
pub async fn json_body<T: serde::de::DeserializeOwned + Default>(
    request: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let limited = http_body_util::Limited::new(request.into_body(), BODY_LIMIT);
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("reading the request body: {e}"),
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON in the request body: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_dockerd_reads_them() {
        let q: HashMap<String, String> = [
            ("a", "1"),
            ("b", "true"),
            ("c", "0"),
            ("d", "false"),
            ("e", ""),
            ("f", "yes"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let on: Vec<bool> = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .map(|n| flag(&q, n))
            .collect();
        assert_eq!(on, [true, true, false, false, false, true, false]);
    }
}
