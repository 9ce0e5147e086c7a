//! Network fault injection for tests: a TCP proxy in front of a real server that can simulate
//! an outage (existing connections cut, new ones dropped) and recover.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to `target` that can be cut and restored.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<Mutex<watch::Sender<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicBool::new(true));
        let (tx, _) = watch::channel(0u64);
        let generation = Arc::new(Mutex::new(tx));
        let (up2, gen2) = (up.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut rx = gen2.lock().unwrap_or_else(|p| p.into_inner()).subscribe();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Ok(Self { addr, up, generation, task })
    }

    /// The proxy's address: point the service under test here.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Simulates an outage: open connections are closed and new ones are dropped at once.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let tx = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        tx.send_modify(|g| *g += 1);
    }

    /// Ends the outage: new connections are forwarded again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
