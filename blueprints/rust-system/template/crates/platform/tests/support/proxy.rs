//! A TCP proxy between a client and the broker that a test can cut, to see how the
//! client behaves when it loses its connection and gets it back.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards the connections it accepts on a loopback port to the broker; dropping it
/// closes them.
pub(crate) struct Proxy {
    /// The broker's URL, with the proxy's address in place of the broker's.
    url: String,
    /// Whether connections go through: false closes them and drops new ones.
    open: watch::Sender<bool>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port in front of the broker at `url`
    /// (`scheme://[user:password@]host:port[/path]`).
    pub(crate) async fn start(url: &str) -> Self {
        let (start, end) = authority(url);
        let upstream = url[start..end].to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (open, is_open) = watch::channel(true);
        let accepting = tokio::spawn(accept(listener, upstream, is_open));
        Self {
            url: format!("{}{address}{}", &url[..start], &url[end..]),
            open,
            accepting,
        }
    }

    /// The URL that reaches the broker through the proxy.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Closes every open connection and drops new ones until [`Proxy::restore`].
    pub(crate) fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections through again.
    pub(crate) fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}

/// Where the host and port of `url` start and end.
fn authority(url: &str) -> (usize, usize) {
    let start = url.find("://").map_or(0, |scheme| scheme + 3);
    let end = url[start..]
        .find('/')
        .map_or(url.len(), |path| start + path);
    let host = url[start..end]
        .rfind('@')
        .map_or(start, |at| start + at + 1);
    (host, end)
}

/// Accepts connections, forwarding each to `upstream` while the proxy is open and
/// closing it as soon as it is not.
async fn accept(listener: TcpListener, upstream: String, is_open: watch::Receiver<bool>) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        if !*is_open.borrow() {
            // Cut: the client sees its connection closed at once.
            continue;
        }
        let (upstream, mut is_open) = (upstream.clone(), is_open.clone());
        tokio::spawn(async move {
            let Ok(mut broker) = TcpStream::connect(&upstream).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                _ = is_open.wait_for(|open| !open) => {}
            }
        });
    }
}
