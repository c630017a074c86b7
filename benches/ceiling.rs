//! The two ceilings of the webhook load benchmark (scripts/bench-webhooks): a bare
//! hyper server answering fixed TwiML, and the local store's create-and-fsync rate.

// `ceiling serve PORT [TWIML_FILE]` answers every request on 127.0.0.1:PORT
// with 200 and the TwiML of the file (callproof's own transfer answer, saved
// by the script), after reading the whole body: hyper, tokio and nothing
// else, the most any server on this stack can answer.
//
// `ceiling store DIR THREADS SECS` runs THREADS threads for SECS seconds,
// each making ~300-byte files the way the local store (src/store/fs.rs)
// creates a fact two directories deep: a temp file written and fsynced, hard
// linked to its name, the temp removed, then the file's directory, its
// parent and DIR fsynced. It prints one JSON line with the creates per second.
//
// Run by the script, not by `cargo bench` alone: with no command it says so
// and exits.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Answered when no TwiML file is given.
const DEFAULT_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Gather action=\"/voice/answer\" input=\"dtmf speech\" numDigits=\"1\"><Say>Do you confirm this change?</Say></Gather></Response>";

/// A fact's size, about that of a stored call claim or consent event.
const FACT_BYTES: usize = 300;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve", port] | ["serve", port, _] => serve(port, args.get(2).copied()),
        ["store", dir, threads, secs] => store(Path::new(dir), threads, secs),
        _ => {
            eprintln!(
                "ceiling: run by scripts/bench-webhooks (commands: serve PORT [TWIML_FILE], store DIR THREADS SECS)"
            );
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ceiling: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(port: &str, twiml_file: Option<&str>) -> Result<(), String> {
    let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    let twiml = match twiml_file {
        Some(path) => Bytes::from(std::fs::read(path).map_err(|e| format!("{path}: {e}"))?),
        None => Bytes::from_static(DEFAULT_TWIML.as_bytes()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        eprintln!("ceiling: listening on {addr}");
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let twiml = twiml.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let twiml = twiml.clone();
                    async move {
                        drain(req.into_body()).await;
                        let response = Response::builder()
                            .header("content-type", "text/xml; charset=utf-8")
                            .body(http_body_full(twiml))
                            .expect("a fixed response builds");
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Reads a request body to its end, as any real handler does.
async fn drain(mut body: Incoming) {
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if frame.is_err() {
            break;
        }
    }
}

/// A one-chunk body, without pulling in http-body-util.
fn http_body_full(bytes: Bytes) -> OneChunk {
    OneChunk(Some(bytes))
}

struct OneChunk(Option<Bytes>);

impl Body for OneChunk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

fn store(dir: &Path, threads: &str, secs: &str) -> Result<(), String> {
    let threads: usize = threads
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("threads {threads:?}: use a whole number above 0"))?;
    let secs: f64 = secs
        .parse()
        .ok()
        .filter(|s: &f64| *s > 0.0)
        .ok_or_else(|| format!("seconds {secs:?}: use a number above 0"))?;
    let root = dir.join("ceiling");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let stop = stop.clone();
            let dir = dir.to_path_buf();
            let own = root.join(format!("t{t:03}"));
            std::thread::spawn(move || creates(&dir, &own, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    for w in workers {
        total += w
            .join()
            .map_err(|_| "a writer thread panicked".to_owned())??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"threads\":{threads},\"creates\":{total},\"secs\":{elapsed:.3},\"per_sec\":{:.1}}}",
        total as f64 / elapsed
    );
    Ok(())
}

/// One writer: creates files in `own` until told to stop; returns how many.
fn creates(root: &Path, own: &Path, stop: &AtomicBool) -> Result<u64, String> {
    let err = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    std::fs::create_dir_all(own).map_err(|e| err("mkdir", own, e))?;
    let payload = vec![b'x'; FACT_BYTES];
    let parent = own.parent().unwrap_or(root).to_path_buf();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let tmp = own.join(format!(".tmp-{n}"));
        let path: PathBuf = own.join(format!("{n:08}.json"));
        let mut f = File::create_new(&tmp).map_err(|e| err("create", &tmp, e))?;
        f.write_all(&payload).map_err(|e| err("write", &tmp, e))?;
        f.sync_all().map_err(|e| err("fsync", &tmp, e))?;
        drop(f);
        std::fs::hard_link(&tmp, &path).map_err(|e| err("link", &path, e))?;
        std::fs::remove_file(&tmp).map_err(|e| err("unlink", &tmp, e))?;
        for d in [own, parent.as_path(), root] {
            File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(|e| err("fsync dir", d, e))?;
        }
        n += 1;
    }
    Ok(n)
}
