//! `GET /metrics` of a running process ([`crate::metrics`]): the route a
//! topic master adds to its HTTP address, and the small server `xus seed
//! --metrics-listen` runs on an address of its own.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// `GET /metrics`: the process's metrics in the OpenMetrics text format.
pub fn routes() -> Router {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics() -> Response {
    // Collectors may read the repository (a master's backup lag): off the runtime.
    match tokio::task::spawn_blocking(|| crate::metrics::global().encode()).await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// The metrics endpoint serving in the background, until [`Self::stop`].
pub struct MetricsServer {
    /// `http://<address>/metrics`, as printed.
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), webseed::ServeError>>,
}

impl MetricsServer {
    /// Binds `listen` and serves [`routes`] there, with the webseed's
    /// connection limits and header deadline.
    ///
    /// # Errors
    ///
    /// An address that cannot be bound.
    pub async fn start(listen: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the metrics endpoint to {listen}"))?;
        let addr = listener
            .local_addr()
            .context("reading the metrics endpoint's address")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(webseed::serve_routes(
            listener,
            webseed::ServerOptions::default(),
            routes(),
            async move {
                // A dropped sender stops the server as well.
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            url: format!("http://{addr}/metrics"),
            stop,
            task,
        })
    }

    /// Stops serving and reports how the server ended.
    ///
    /// # Errors
    ///
    /// When the server had failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .context("the metrics endpoint's task")?
            .context("the metrics endpoint")
    }
}
