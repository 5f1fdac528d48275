//! The store's stalled-stream settings against a local HTTP server that plays S3 on the wire:
//! a consumer that pauses past the SDK's 5 s grace period still reads the whole body, so does
//! one whose server goes quiet for 7 s mid-body (the emulator, busy with our part uploads: the
//! cause of the 1.8 GB file's failed first attempt, which the SDK's default protection turns
//! into `ThroughputBelowMinimum`), a long silent `CopyObject` still succeeds, and a connection
//! that stops sending is still failed, in the store's idle time (1 s here) rather than never.
//!
//! No emulator needed: the server is a raw TCP listener on 127.0.0.1 answering one request
//! per connection with bytes written by hand, so the pauses are exact.

use std::time::{Duration, Instant};

use function::s3::{S3Store, Timeouts, sdk_settings};
use function::{ChunkStream, ObjectStore, Pin, Source};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// A `GetObject` of `size` bytes, sent as fast as the client reads.
    Body { size: usize },
    /// A `GetObject` that sends `sent` of `size` bytes, then nothing (the connection stays open).
    DeadAfter { size: usize, sent: usize },
    /// A `GetObject` that sends `first` bytes, is silent for `pause`, then sends the rest.
    PauseMidBody {
        size: usize,
        first: usize,
        pause: Duration,
    },
    /// A `CopyObject` answer: `200` at once, then silence for `silent`, then the result (as S3
    /// does for a long copy).
    SlowCopy { silent: Duration },
}

async fn read_request(stream: &mut TcpStream) -> String {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&request).into_owned()
}

/// Serves `script` to every connection; returns the endpoint.
async fn serve(script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = read_request(&mut stream).await;
                match script {
                    Script::Body { size } | Script::DeadAfter { size, .. } => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: text/csv\r\nETag: \"abc\"\r\nx-amz-request-id: stall-test\r\n\r\n"
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let send = match script {
                            Script::DeadAfter { sent, .. } => sent,
                            _ => size,
                        };
                        let body = vec![b'x'; send];
                        let _ = stream.write_all(&body).await;
                        let _ = stream.flush().await;
                        // Keep the connection open (and silent) well past every test.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Script::PauseMidBody { size, first, pause } => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: text/csv\r\nETag: \"abc\"\r\n\r\n"
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.write_all(&vec![b'x'; first]).await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(pause).await;
                        let _ = stream.write_all(&vec![b'x'; size - first]).await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Script::SlowCopy { silent } => {
                        let result = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><LastModified>2025-06-24T15:04:05.000Z</LastModified><ETag>\"abc\"</ETag></CopyObjectResult>";
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/xml\r\nx-amz-request-id: stall-test\r\n\r\n",
                            result.len()
                        );
                        let _ = stream.write_all(head.as_bytes()).await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(silent).await;
                        let _ = stream.write_all(result.as_bytes()).await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            });
        }
    });
    url
}

/// The store as the function builds it, against `endpoint`.
async fn store(endpoint: &str, timeouts: Timeouts) -> S3Store {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ));
    let sdk = sdk_settings(loader, timeouts).load().await;
    S3Store::new(S3Store::client(&sdk, true), timeouts)
}

const TIMEOUTS: Timeouts = Timeouts {
    body_idle: Duration::from_secs(1),
    attempt: Duration::from_secs(30),
    connect: Duration::from_secs(2),
};

fn source(pin: &Pin) -> Source<'_> {
    Source {
        bucket: "in",
        key: "users.csv",
        pin,
    }
}

#[tokio::test]
async fn a_consumer_pausing_past_the_grace_period_still_reads_the_whole_body() {
    let size = 8 * 1024 * 1024;
    let endpoint = serve(Script::Body { size }).await;
    let store = store(&endpoint, TIMEOUTS).await;
    let mut body = store.get_object(source(&Pin::Current)).await.expect("get");
    let mut read = body
        .next_chunk()
        .await
        .expect("first chunk")
        .map_or(0, |c| c.len());
    // Back-pressured by part uploads, as the handler can be: nothing read for 7 s (the SDK's
    // grace period is 5 s), then the rest.
    tokio::time::sleep(Duration::from_secs(7)).await;
    while let Some(chunk) = body
        .next_chunk()
        .await
        .expect("no stall error after the pause")
    {
        read += chunk.len();
    }
    assert_eq!(read, size);
}

#[tokio::test]
async fn a_server_quiet_past_the_grace_period_mid_body_does_not_fail_the_read() {
    let size = 1024 * 1024;
    let endpoint = serve(Script::PauseMidBody {
        size,
        first: 64 * 1024,
        pause: Duration::from_secs(7),
    })
    .await;
    let store = store(
        &endpoint,
        Timeouts {
            body_idle: Duration::from_secs(10),
            ..TIMEOUTS
        },
    )
    .await;
    let mut body = store.get_object(source(&Pin::Current)).await.expect("get");
    let mut read = 0;
    while let Some(chunk) = body
        .next_chunk()
        .await
        .expect("a 7 s lull is not a dead connection")
    {
        read += chunk.len();
    }
    assert_eq!(read, size);
}

#[tokio::test]
async fn a_long_silent_copy_still_succeeds() {
    let endpoint = serve(Script::SlowCopy {
        silent: Duration::from_secs(7),
    })
    .await;
    let store = store(&endpoint, TIMEOUTS).await;
    store
        .copy_object(source(&Pin::Version("v1".into())), "raw", "users.csv")
        .await
        .expect("a copy silent for 7 s is not a stalled stream");
}

#[tokio::test]
async fn a_dead_connection_still_fails_in_bounded_time() {
    let endpoint = serve(Script::DeadAfter {
        size: 4 * 1024 * 1024,
        sent: 64 * 1024,
    })
    .await;
    let store = store(&endpoint, TIMEOUTS).await;
    let mut body = store.get_object(source(&Pin::Current)).await.expect("get");
    let started = Instant::now();
    let error = loop {
        match body.next_chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the body cannot end: 4 MiB were announced"),
            Err(e) => break e,
        }
    };
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "failed after {waited:?}"
    );
    assert!(error.retryable, "{error}");
    assert!(error.message.contains("no byte for"), "{error}");
}
