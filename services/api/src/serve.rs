//! The HTTP server loop: hyper's connection builder with a header read
//! timeout, so that slow clients cannot hold connections open (what
//! `axum::serve` does not offer), and graceful shutdown of open connections.

use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send a request's head (request line and
/// headers); a slower one is disconnected, so slow clients cannot hold
/// connections open. The 30 s request timeout applies once the head is in.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown`, then lets open requests
/// finish (at most 30 s). Like `axum::serve`, but with a timer, without
/// which hyper's header read timeout never fires.
pub(crate) async fn serve(listener: tokio::net::TcpListener, router: Router, shutdown: CancellationToken) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service =
            tower::ServiceExt::map_request(router.clone(), move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                request
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections did not finish within 30 s of shutdown");
    }
}
