//! Fan-out micro-benchmark: N clients in one room, M broadcasts; delivered messages per second
//! and server memory per connection.
//!
//! ```text
//! cargo run --release -p microframework-ws --example fanout -- --clients 1000 --messages 2000 --size 128
//! ```
//!
//! The server (a real `Service` with the WebSocket router) runs in this process; the clients run
//! in a child process (this program again, with `--role clients`), so that the resident memory
//! measured before and after connecting is the server's alone. The broadcaster keeps at most
//! `--window` messages in flight (sent but not yet received by every client; the default is half
//! of `websocket.send_queue`), so that no client's queue overflows and nothing is dropped: the
//! figure is sustained throughput, not burst absorption.
//!
//! Prints one JSON line on stdout (for `cargo xtask bench ws`) and a summary on stderr:
//! `{"clients":..,"messages":..,"size":..,"delivered":..,"dropped":..,"elapsed_s":..,
//! "msgs_per_sec":..,"mib_per_sec":..,"rss_before_kib":..,"rss_after_kib":..,
//! "rss_per_conn_kib":..,"rss_peak_kib":..,"connect_s":..}`. `rss_per_conn_kib` is the growth of
//! the server's resident memory from before the clients connect to after they all joined the
//! room (idle connections); `rss_peak_kib` is the high-water mark including the broadcasts.
//! Memory is read from `/proc/self/status` (Linux); the client process needs `--clients` file
//! descriptors.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use microframework::Service;
use microframework::config::ConfigSources;
use microframework_ws::{Connection, Envelope, Hub, OutMessage, WsError, WsHandler, async_trait};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error + Send + Sync>;

const ROOM: &str = "bench";

#[derive(Debug, Clone)]
struct Args {
    role_clients: bool,
    url: String,
    clients: usize,
    messages: u64,
    size: usize,
    send_queue: usize,
    window: u64,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        role_clients: false,
        url: String::new(),
        clients: 1000,
        messages: 2000,
        size: 128,
        send_queue: 256,
        window: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--role" => a.role_clients = value()? == "clients",
            "--url" => a.url = value()?,
            "--clients" => a.clients = value()?.parse()?,
            "--messages" => a.messages = value()?.parse()?,
            "--size" => a.size = value()?.parse()?,
            "--send-queue" => a.send_queue = value()?.parse()?,
            "--window" => a.window = value()?.parse()?,
            "-h" | "--help" => {
                eprintln!(
                    "fanout [--clients N] [--messages M] [--size BYTES] [--send-queue Q] [--window W]\n\
                     defaults: 1000 clients, 2000 messages of 128 bytes, queue 256, window queue/2"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    if a.window == 0 {
        a.window = (a.send_queue as u64 / 2).max(1);
    }
    Ok(a)
}

struct Join;

#[async_trait]
impl WsHandler for Join {
    async fn on_message(&self, _conn: &Connection, msg: Envelope) -> Result<(), WsError> {
        Err(WsError::unknown_type(&msg.kind))
    }
}

fn rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = parse_args()?;
    if args.role_clients { clients(args).await } else { server(args).await }
}

async fn server(args: Args) -> Result<(), Error> {
    let hub = Hub::new();
    let sources = ConfigSources::new()
        .dir(std::env::temp_dir().join("microframework-ws-fanout-no-config"))
        .env("bench")
        .env_vars(Vec::new())
        .set("server.host", "127.0.0.1")
        .set("server.port", "0")
        .set("logging.level", "warn")
        .set("websocket.max_connections", (args.clients + 16).to_string())
        .set("websocket.send_queue", args.send_queue.to_string());
    let running = Service::new("ws-fanout")
        .component(hub.component())
        .router({
            let hub = hub.clone();
            move |ctx| microframework_ws::router(hub, Join, ctx, None)
        })
        .config_sources(sources)
        .start()
        .await?;
    let url = format!("ws://{}/ws", running.local_addr());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib();

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["--role", "clients", "--url", &url])
        .args(["--clients", &args.clients.to_string(), "--messages", &args.messages.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    // The child reports `ready` once every client has joined, then the lowest count of messages
    // received by any client as it grows.
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let connect_started = Instant::now();
    match progress.recv().await.as_deref() {
        Some("ready") => {}
        other => return Err(format!("the client process failed: {other:?}").into()),
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    while hub.members(ROOM).len() < args.clients {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = rss_kib();

    let empty = OutMessage::json(&json!({"type": "b", "data": {"seq": 0, "pad": ""}}))?.len();
    let pad = "x".repeat(args.size.saturating_sub(empty));
    let started = Instant::now();
    let (mut sent, mut acked) = (0u64, 0u64);
    let (mut delivered, mut dropped) = (0usize, 0usize);
    while acked < args.messages {
        while sent < args.messages && sent - acked < args.window {
            let msg = OutMessage::json(&json!({"type": "b", "data": {"seq": sent, "pad": pad}}))?;
            let report = hub.broadcast(ROOM, msg);
            delivered += report.delivered;
            dropped += report.dropped;
            sent += 1;
        }
        match progress.recv().await {
            Some(line) => acked = line.parse().map_err(|_| format!("unexpected line from the clients: {line}"))?,
            None => return Err("the client process ended early".into()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = args.clients as f64 * args.messages as f64;
    let msg_len = OutMessage::json(&json!({"type": "b", "data": {"seq": 0, "pad": pad}}))?.len();
    let result = json!({
        "clients": args.clients,
        "messages": args.messages,
        "size": msg_len,
        "send_queue": args.send_queue,
        "window": args.window,
        "delivered": delivered,
        "dropped": dropped,
        "elapsed_s": elapsed,
        "msgs_per_sec": total / elapsed,
        "mib_per_sec": total * msg_len as f64 / elapsed / (1024.0 * 1024.0),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_conn_kib": rss_after.saturating_sub(rss_before) as f64 / args.clients as f64,
        "rss_peak_kib": proc_status_kib("VmHWM:"),
        "connect_s": connect_s,
    });
    eprintln!(
        "{} clients x {} messages of {} B: {:.0} msgs/s delivered ({:.1} MiB/s) in {:.2}s, {} dropped; \
         server RSS {} -> {} KiB ({:.1} KiB per connection)",
        args.clients,
        args.messages,
        msg_len,
        total / elapsed,
        total * msg_len as f64 / elapsed / (1024.0 * 1024.0),
        elapsed,
        dropped,
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before) as f64 / args.clients as f64
    );
    println!("{result}");
    running.shutdown().await;
    let _ = child.wait();
    Ok(())
}

async fn clients(args: Args) -> Result<(), Error> {
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..args.clients).map(|_| AtomicU64::new(0)).collect());
    let url = args.url.clone();
    let connected: Vec<_> = stream::iter(0..args.clients)
        .map(|i| {
            let url = url.clone();
            async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
                let join = json!({"type": "join", "room": ROOM}).to_string();
                futures_util::SinkExt::send(&mut ws, Message::text(join)).await?;
                // Wait for the acknowledgement.
                while let Some(msg) = ws.next().await {
                    if matches!(msg?, Message::Text(_)) {
                        break;
                    }
                }
                Ok::<_, Error>((i, ws))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut tasks = Vec::with_capacity(args.clients);
    for c in connected {
        let (i, mut ws) = c?;
        let counts = counts.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                if matches!(msg, Message::Text(_)) {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut out = std::io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut reported = 0;
    while reported < args.messages {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let low = counts.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0);
        if low > reported {
            reported = low;
            writeln!(out, "{low}")?;
            out.flush()?;
        }
    }
    // Stay connected until the server closes (at its shutdown).
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(())
}
