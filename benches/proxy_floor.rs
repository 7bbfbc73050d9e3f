//! Floors for the proxy load benchmark: how fast can a proxy on this machine be, before any DLP work?
//!
//! `benches/proxy_load.sh` runs these with `FLOOR=1` and reports them next to nginx and dlpgate:
//!
//! - `pingora LISTEN UPSTREAM`: the smallest HTTP/1.1 proxy loop on pingora-core's own sessions
//!   (`read_request`, `write_request_header`, `read_response`, `read_body_bytes`, `write_body`), with
//!   one upstream connection held per client connection. No pingora-proxy, no connection pool, no
//!   filters: the ceiling for anything built on Pingora's HTTP/1 stack.
//! - `tokio LISTEN UPSTREAM`: tokio and the kernel only. It forwards GET request heads and reads
//!   `Content-Length` responses with a hand-written scan. Not a usable proxy (no chunked bodies, no
//!   request bodies, no error handling): the floor of the runtime and the socket path.
//!
//! Both use two worker threads, like the gateway and nginx in the benchmark.

use std::error::Error;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::connectors::http::v1::Connector;
use pingora::protocols::Stream;
use pingora::protocols::http::v1::{client::HttpSession as Upstream, server::HttpSession as Downstream};
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::upstreams::peer::HttpPeer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.as_slice() {
        [mode, listen, upstream] if mode == "pingora" => pingora_loop(listen, upstream),
        [mode, listen, upstream] if mode == "tokio" => tokio_loop(listen, upstream),
        _ => Err("usage: proxy_floor pingora|tokio LISTEN_ADDR UPSTREAM_ADDR".into()),
    }
}

struct Loop {
    connector: Connector,
    peer: HttpPeer,
}

impl Loop {
    async fn serve(&self, stream: Stream) -> Res<()> {
        let mut down = Downstream::new(stream);
        let mut held: Option<Upstream> = None;
        while down.read_request().await?.is_some() {
            let mut up = match held.take() {
                Some(up) => up,
                None => self.connector.get_http_session(&self.peer).await?.0,
            };
            up.write_request_header(Box::new(down.req_header().clone())).await?;
            up.finish_body().await?;
            up.read_response().await?;
            let head = up.resp_header().ok_or("no response header")?.clone();
            down.write_response_header(Box::new(head)).await?;
            while let Some(chunk) = up.read_body_bytes().await? {
                down.write_body(&chunk).await?;
            }
            down.finish_body().await?;
            up.respect_keepalive();
            held = up.reuse().await.map(Upstream::new);
            let Some(next) = down.reuse().await? else { break };
            down = Downstream::new(next.into_parts().0);
        }
        Ok(())
    }
}

#[async_trait]
impl ServerApp for Loop {
    async fn process_new(self: &Arc<Self>, stream: Stream, _shutdown: &ShutdownWatch) -> Option<Stream> {
        let _ = self.serve(stream).await;
        None
    }
}

fn pingora_loop(listen: &str, upstream: &str) -> Res<()> {
    let conf = ServerConf { threads: 2, work_stealing: false, ..ServerConf::default() };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let app = Loop { connector: Connector::new(None), peer: HttpPeer::new(upstream, false, String::new()) };
    let mut service = Service::new("floor".into(), app);
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}

fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n").map(|p| p + 4)
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Read from `from` into `buf` until a header block is complete; returns (bytes read, head length).
async fn read_head(from: &mut TcpStream, buf: &mut [u8]) -> Res<Option<(usize, usize)>> {
    let mut n = 0;
    loop {
        let r = from.read(&mut buf[n..]).await?;
        if r == 0 {
            return Ok(None);
        }
        n += r;
        if let Some(h) = head_end(&buf[..n]) {
            return Ok(Some((n, h)));
        }
        if n == buf.len() {
            return Err("header too large".into());
        }
    }
}

async fn tokio_conn(mut client: TcpStream, upstream: Arc<str>) -> Res<()> {
    client.set_nodelay(true)?;
    let mut up = TcpStream::connect(&*upstream).await?;
    up.set_nodelay(true)?;
    let (mut req, mut resp) = (vec![0u8; 16 * 1024], vec![0u8; 64 * 1024]);
    while let Some((_, head)) = read_head(&mut client, &mut req).await? {
        up.write_all(&req[..head]).await?;
        let Some((n, head)) = read_head(&mut up, &mut resp).await? else { break };
        let total = head + content_length(&resp[..head]);
        client.write_all(&resp[..n]).await?;
        let mut sent = n;
        while sent < total {
            let r = up.read(&mut resp).await?;
            if r == 0 {
                return Ok(());
            }
            client.write_all(&resp[..r]).await?;
            sent += r;
        }
    }
    Ok(())
}

fn tokio_loop(listen: &str, upstream: &str) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let upstream: Arc<str> = upstream.into();
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        loop {
            let (client, _) = listener.accept().await?;
            tokio::spawn(tokio_conn(client, upstream.clone()));
        }
    })
}
