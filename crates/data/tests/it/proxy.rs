//! A TCP proxy in front of a real database server that a test can cut and restore, to simulate
//! an outage.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Tasks {
    accept: Option<JoinHandle<()>>,
    conns: Vec<JoinHandle<()>>,
}

pub(crate) struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Tasks>>,
}

impl Proxy {
    /// A proxy on a free local port forwarding to `target`.
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self { addr: listener.local_addr().unwrap(), target, tasks: Arc::default() };
        proxy.serve(listener);
        proxy
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        let target = self.target;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().conns.push(conn);
            }
        });
        self.tasks.lock().unwrap().accept = Some(accept);
    }

    /// Stops listening (new connections are refused) and cuts every open connection.
    pub(crate) async fn down(&self) {
        let (accept, conns) = {
            let mut t = self.tasks.lock().unwrap();
            (t.accept.take(), std::mem::take(&mut t.conns))
        };
        for task in accept.into_iter().chain(conns) {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn up(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}
