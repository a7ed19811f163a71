//! A real SMTP server on loopback for the email tests: the `mailin` crate's
//! SMTP state machine (the one `mailin-embedded` is built on) behind a small
//! tokio accept loop. (`mailin-embedded` itself does not build without its
//! rustls feature, which would pull a second TLS provider into the app.)
//!
//! It accepts every recipient but two kinds: `reject@...` gets a permanent
//! `550`, and `flaky@...` a transient `451` the first time it is tried.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Default)]
struct Shared {
    mails: Vec<Mail>,
    /// Every RCPT TO the server saw, in order.
    rcpts: Vec<String>,
}

/// The running server.
pub struct SmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// `smtp://127.0.0.1:<port>` for `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.shared.lock().unwrap().mails.clone()
    }

    /// How many times `rcpt` was offered as a recipient.
    pub fn rcpt_count(&self, rcpt: &str) -> usize {
        self.shared.lock().unwrap().rcpts.iter().filter(|r| r.as_str() == rcpt).count()
    }

    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the SMTP server");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, peer)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Err(e) = session(socket, peer.ip(), s).await {
                        eprintln!("test SMTP session ended: {e}");
                    }
                });
            }
        });
        SmtpServer { addr, shared, task }
    }
}

struct Conn {
    shared: Arc<Mutex<Shared>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Conn {
    fn rcpt(&mut self, to: &str) -> Response {
        let mut s = self.shared.lock().unwrap();
        s.rcpts.push(to.to_string());
        let seen = s.rcpts.iter().filter(|r| r.as_str() == to).count();
        if to.starts_with("reject@") {
            Response::custom(550, "5.1.1 no such mailbox here".to_string())
        } else if to.starts_with("flaky@") && seen == 1 {
            Response::custom(451, "4.3.0 mailbox busy, try again later".to_string())
        } else {
            mailin::response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = Mail { from: self.from.clone(), to: self.to.clone(), data: String::from_utf8_lossy(&self.data).into_owned() };
        self.shared.lock().unwrap().mails.push(mail);
        mailin::response::OK
    }
}

async fn session(socket: tokio::net::TcpStream, ip: IpAddr, shared: Arc<Mutex<Shared>>) -> io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    let handler = Conn { shared, from: String::new(), to: Vec::new(), data: Vec::new() };
    let mut session = SessionBuilder::new("advert-01-test-smtp").build(ip, handler);
    write.write_all(&session.greeting().buffer()?).await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let resp = session.process(&line);
        match resp.action {
            Action::NoReply => {}
            Action::Reply => write.write_all(&resp.buffer()?).await?,
            Action::Close | Action::UpgradeTls => {
                write.write_all(&resp.buffer()?).await?;
                return Ok(());
            }
        }
    }
}
