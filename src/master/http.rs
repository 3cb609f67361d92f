//! The master's own HTTP routes, next to its webseed: `POST /push`,
//! `PUT /push/metadata/<infohash>`, `GET /status` and `GET /metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use webseed::ClientAddr;

use super::backup::RemoteStatus;
use super::state::{Master, topic_id};
use super::{accept, slow_body};
use crate::topic::push_answer::BranchSummary;
use crate::topic::push_request::MAX_PUSH_BODY;

/// The routes, sharing `master`.
pub(crate) fn routes(master: Arc<Master>) -> Router {
    Router::new()
        .route("/push", post(push))
        .route("/push/metadata/{info_hash}", put(offer_metadata))
        .route("/status", get(status))
        .with_state(master)
        .merge(crate::swarm::metrics_server::routes())
}

async fn push(
    State(master): State<Arc<Master>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    body: axum::body::Body,
) -> Response {
    let body = match slow_body::read(body, MAX_PUSH_BODY).await {
        Ok(body) => body,
        Err(error) => return body_refused(client, &error),
    };
    let (status, answer) = accept::push(&master, client, &body).await;
    crate::metrics::global().push(answer.result_label());
    json(status, &answer)
}

/// The answer to a body that did not arrive whole: 413 or 408, and the
/// connection closes (its unread rest is never waited for).
fn body_refused(client: std::net::SocketAddr, error: &slow_body::BodyError) -> Response {
    tracing::info!(%client, %error, "request body refused");
    let status = match error {
        slow_body::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::REQUEST_TIMEOUT,
    };
    let answer = crate::topic::push_answer::PushAnswer::Invalid {
        message: error.to_string(),
    };
    crate::metrics::global().push(answer.result_label());
    let mut response = json(status, &answer);
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// Reads its body only once the headers are checked, up to the size of an
/// info dictionary (not [`MAX_PUSH_BODY`]: the body is streamed, not
/// extracted).
async fn offer_metadata(
    State(master): State<Arc<Master>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    Path(info_hash): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    match accept::offer_metadata(&master, client, &info_hash, &headers, body).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err((status, answer)) => json(status, &answer),
    }
}

/// `GET /status`: every topic's branches and each backup remote's lag.
#[derive(Serialize)]
struct StatusAnswer {
    topics: Vec<TopicStatus>,
    /// Bytes this master has sent to peers since it started.
    uploaded_bytes: u64,
    /// The master's BitTorrent port, on the host of its HTTP address: a
    /// writer dials it to hand over what it pushes.
    bittorrent_port: Option<u16>,
}

#[derive(Serialize)]
struct TopicStatus {
    name: String,
    id: String,
    branches: Vec<BranchSummary>,
    backups: Vec<RemoteStatus>,
}

async fn status(State(master): State<Arc<Master>>) -> Response {
    let mut topics = Vec::new();
    for topic in &master.topics {
        let branches = match topic.branches().await {
            Ok(branches) => branches,
            Err(error) => {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("reading topic {}: {error:#}", topic.config.name),
                );
            }
        };
        topics.push(TopicStatus {
            name: topic.config.name.clone(),
            id: topic_id(&topic.config),
            branches: branches
                .into_iter()
                .map(|(name, commit)| BranchSummary {
                    seq: topic.head(&name).map(|h| h.seq),
                    name,
                    commit: commit.to_hex(),
                })
                .collect(),
            backups: topic.backups.status(),
        });
    }
    let uploaded_bytes = master.swarm.engine().uploaded_bytes();
    let bittorrent_port = master.swarm.engine().listen_addr().map(|a| a.port());
    json(
        StatusCode::OK,
        &StatusAnswer {
            topics,
            uploaded_bytes,
            bittorrent_port,
        },
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
