//! The master's own HTTP routes, next to its webseed: `POST /push` and
//! `GET /status`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use webseed::ClientAddr;

use super::accept;
use super::backup::RemoteStatus;
use super::state::{Master, topic_id};
use crate::topic::push_answer::BranchSummary;
use crate::topic::push_request::MAX_PUSH_BODY;

/// The routes, sharing `master`.
pub(crate) fn routes(master: Arc<Master>) -> Router {
    Router::new()
        .route("/push", post(push))
        .route("/status", get(status))
        .layer(DefaultBodyLimit::max(MAX_PUSH_BODY))
        .with_state(master)
}

async fn push(
    State(master): State<Arc<Master>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    body: Bytes,
) -> Response {
    let (status, answer) = accept::push(&master, client, &body).await;
    json(status, &answer)
}

/// `GET /status`: every topic's branches and each backup remote's lag.
#[derive(Serialize)]
struct StatusAnswer {
    topics: Vec<TopicStatus>,
    /// Bytes this master has sent to peers since it started.
    uploaded_bytes: u64,
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
    json(
        StatusCode::OK,
        &StatusAnswer {
            topics,
            uploaded_bytes,
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
