//! The master's own HTTP routes, next to its webseed: `POST /push`,
//! `PUT /push/metadata/<infohash>`, `GET /status`, `GET /` (the status as
//! an HTML page) and `GET /metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use webseed::ClientAddr;

use super::state::Master;
use super::status::{self, PushRecord};
use super::{accept, slow_body, status_page};
use crate::topic::push_answer::PushAnswer;
use crate::topic::push_request::MAX_PUSH_BODY;

/// The routes, sharing `master`.
pub(crate) fn routes(master: Arc<Master>) -> Router {
    Router::new()
        .route("/push", post(push))
        .route("/push/metadata/{info_hash}", put(offer_metadata))
        .route("/", get(status_page))
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
    master.recent_pushes.record(push_record(&body, &answer));
    json(status, &answer)
}

/// What the status keeps of an answered push: the writer from the request
/// (when it parses), the rest from the answer.
fn push_record(body: &[u8], answer: &PushAnswer) -> PushRecord {
    let request = crate::topic::push_request::SignedPush::from_body(body).ok();
    let (topic, branch, commit) = match answer {
        PushAnswer::Accepted {
            topic,
            branch,
            commit,
            ..
        }
        | PushAnswer::Contained {
            topic,
            branch,
            commit,
            ..
        }
        | PushAnswer::NotFastForward {
            topic,
            branch,
            commit,
            ..
        } => (
            Some(topic.clone()),
            Some(branch.clone()),
            Some(commit.clone()),
        ),
        _ => (
            None,
            request.as_ref().map(|r| r.request.branch.to_string()),
            request.as_ref().map(|r| r.request.tip().commit.to_hex()),
        ),
    };
    PushRecord {
        time: status::unix_now(),
        writer: request.map(|r| r.request.writer.to_hex()),
        topic,
        branch,
        commit,
        result: answer.result_label(),
    }
}

/// The answer to a body that did not arrive whole: 413 or 408, and the
/// connection closes (its unread rest is never waited for).
fn body_refused(client: std::net::SocketAddr, error: &slow_body::BodyError) -> Response {
    tracing::info!(%client, %error, "request body refused");
    let status = match error {
        slow_body::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::REQUEST_TIMEOUT,
    };
    let answer = PushAnswer::Invalid {
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

async fn status(State(master): State<Arc<Master>>) -> Response {
    match status::gather(&master).await {
        Ok(answer) => json(StatusCode::OK, &answer),
        Err(error) => json(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error:#}")),
    }
}

/// `GET /`: the same as `/status`, as an HTML page for a person.
async fn status_page(State(master): State<Arc<Master>>) -> Response {
    match status::gather(&master).await {
        Ok(answer) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            status_page::render(&answer),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}")).into_response(),
    }
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
