//! `baseline-ws`: the bare tokio-tungstenite counterpart of microframework-ws's `fanout` example,
//! the reference `cargo xtask bench ws` compares the hub against.
//!
//! It measures exactly what `fanout` measures, with the same client process (the `fanout`
//! executable run with `--role clients`, given by `--clients-exe`), the same message bytes, the
//! same flow control (at most `--window` broadcasts in flight) and the same JSON line on stdout,
//! but the server is the minimum that keeps the hub's delivery semantics: tokio-tungstenite on a
//! plain `TcpListener`, one task per connection, a bounded queue of `--send-queue` messages per
//! connection written in batches (feed, then one flush), a broadcast that serialises once and
//! never waits (`try_send`; a full queue counts as dropped), and the hub's tungstenite buffer
//! sizes. No rooms, envelopes, heartbeats, limits, metrics, logging or HTTP stack: the `join`
//! message is answered with `joined` and everything else a client sends is ignored.
//!
//! ```text
//! baseline-ws --clients-exe target/release/examples/fanout --clients 1000 --messages 2000 --size 128
//! ```

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

/// Messages written before one flush (as the hub's writer).
const BATCH: usize = 64;
/// The hub's tungstenite buffers (read 4 KiB, write 8 KiB; tungstenite's defaults are 128 KiB
/// each, allocated per connection) and its default message limit (64 KiB), so that the memory per
/// connection compares the servers rather than buffer settings.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 8 * 1024;
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Args {
    clients_exe: String,
    clients: usize,
    messages: u64,
    size: usize,
    send_queue: usize,
    window: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a =
        Args { clients_exe: String::new(), clients: 1000, messages: 2000, size: 128, send_queue: 256, window: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients-exe" => a.clients_exe = value()?,
            "--clients" => a.clients = value()?.parse()?,
            "--messages" => a.messages = value()?.parse()?,
            "--size" => a.size = value()?.parse()?,
            "--send-queue" => a.send_queue = value()?.parse()?,
            "--window" => a.window = value()?.parse()?,
            "-h" | "--help" => {
                eprintln!(
                    "baseline-ws --clients-exe <fanout> [--clients N] [--messages M] [--size BYTES] \
                     [--send-queue Q] [--window W]\n\
                     defaults: 1000 clients, 2000 messages of 128 bytes, queue 256, window queue/2"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    if a.clients_exe.is_empty() {
        bail!("--clients-exe <path of the fanout example> is required");
    }
    if a.send_queue == 0 {
        bail!("--send-queue must be at least 1");
    }
    if a.window == 0 {
        a.window = (a.send_queue as u64 / 2).max(1);
    }
    Ok(a)
}

/// The queues of the connections that joined.
type Peers = Arc<RwLock<Vec<mpsc::Sender<Message>>>>;

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
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    let peers: Peers = Arc::default();
    tokio::spawn(accept(listener, Arc::clone(&peers), args.send_queue));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = proc_status_kib("VmRSS:");

    let mut child = Command::new(&args.clients_exe)
        .args(["--role", "clients", "--url", &url])
        .args(["--clients", &args.clients.to_string(), "--messages", &args.messages.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting the clients ({})", args.clients_exe))?;
    let stdout = child.stdout.take().context("no child stdout")?;
    // The child reports `ready` once every client has joined, then the lowest count of messages
    // received by any client as it grows.
    let (tx, mut progress) = mpsc::unbounded_channel::<String>();
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
        other => bail!("the client process failed: {other:?}"),
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    while peers.read().unwrap_or_else(|p| p.into_inner()).len() < args.clients {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = proc_status_kib("VmRSS:");

    let empty = serde_json::to_string(&json!({"type": "b", "data": {"seq": 0, "pad": ""}}))?.len();
    let pad = "x".repeat(args.size.saturating_sub(empty));
    let started = Instant::now();
    let (mut sent, mut acked) = (0u64, 0u64);
    let (mut delivered, mut dropped) = (0usize, 0usize);
    while acked < args.messages {
        while sent < args.messages && sent - acked < args.window {
            let text = serde_json::to_string(&json!({"type": "b", "data": {"seq": sent, "pad": pad}}))?;
            let msg = Message::text(text);
            for peer in peers.read().unwrap_or_else(|p| p.into_inner()).iter() {
                match peer.try_send(msg.clone()) {
                    Ok(()) => delivered += 1,
                    Err(_) => dropped += 1,
                }
            }
            sent += 1;
        }
        match progress.recv().await {
            Some(line) => {
                acked = line.parse().map_err(|_| anyhow::anyhow!("unexpected line from the clients: {line}"))?
            }
            None => bail!("the client process ended early"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = args.clients as f64 * args.messages as f64;
    let msg_len = serde_json::to_string(&json!({"type": "b", "data": {"seq": 0, "pad": pad}}))?.len();
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
    // Dropping the queues makes every connection send a close frame (1001) and end, which ends
    // the client process.
    peers.write().unwrap_or_else(|p| p.into_inner()).clear();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    Ok(())
}

async fn accept(listener: TcpListener, peers: Peers, send_queue: usize) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, Arc::clone(&peers), send_queue));
            }
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One client: the handshake, `join` → `joined` (registering the connection's queue), then the
/// queue written in batches until the queue is dropped (close 1001) or the client goes away.
async fn connection(stream: TcpStream, peers: Peers, send_queue: usize) {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else { return };
    let (mut sink, mut incoming) = ws.split();
    let room = loop {
        match incoming.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(msg) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
                if msg["type"] == "join" {
                    break msg["room"].clone();
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    };
    let (tx, mut rx) = mpsc::channel::<Message>(send_queue);
    peers.write().unwrap_or_else(|p| p.into_inner()).push(tx);
    let joined = json!({"type": "joined", "room": room}).to_string();
    if sink.send(Message::text(joined)).await.is_err() {
        return;
    }
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    let frame = CloseFrame { code: CloseCode::Away, reason: "going away".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    return;
                }
                for m in batch.drain(..) {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            frame = incoming.next() => match frame {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
