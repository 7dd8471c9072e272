//! The HTTP(S) client tracker requests run on: blocking (it runs on the runtime's blocking
//! pool, never on the event loop), rustls for TLS with the web's root certificates plus
//! any the settings add, a timeout, a few redirects, and a cap on the body.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use fxtor_proto::tracker::MAX_RESPONSE_SIZE;

/// The most redirects followed for one request.
pub const MAX_REDIRECTS: u32 = 5;

/// Why the extra root certificates could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A PEM file could not be read.
    #[error("reading PEM certificates: {0}")]
    Pem(#[from] std::io::Error),
    /// A certificate was refused as a trust anchor.
    #[error("refused root certificate: {0}")]
    Refused(#[from] rustls::Error),
    /// A PEM input held no certificate.
    #[error("no certificate in the PEM input")]
    Empty,
}

/// A root certificate to trust besides the web's, as PEM text or DER bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCertificate {
    /// One or more `-----BEGIN CERTIFICATE-----` blocks.
    Pem(Vec<u8>),
    /// One DER-encoded certificate.
    Der(Vec<u8>),
}

/// A blocking HTTP client for tracker requests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    agent: ureq::Agent,
}

impl HttpClient {
    /// A client trusting the web's root certificates and `extra`, giving up on a request
    /// after `timeout`.
    pub fn new(extra: &[RootCertificate], timeout: Duration) -> Result<Self, CertificateError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra {
            match cert {
                RootCertificate::Der(der) => roots.add(der.clone().into())?,
                RootCertificate::Pem(pem) => {
                    let mut found = false;
                    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                        roots.add(cert?)?;
                        found = true;
                    }
                    if !found {
                        return Err(CertificateError::Empty);
                    }
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout(timeout)
            .redirects(MAX_REDIRECTS)
            .user_agent(concat!("fxtor/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self { agent })
    }

    /// GETs `url`: the status and at most [`MAX_RESPONSE_SIZE`] bytes of body (a status
    /// other than 2xx is an answer too: its body may say why), or why there is none.
    /// Blocks: run it on a blocking pool.
    pub fn get(&self, url: &str) -> Result<(u16, Vec<u8>), String> {
        let response = match self.agent.get(url).call() {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(e)) => return Err(e.to_string()),
        };
        let status = response.status();
        let limit = MAX_RESPONSE_SIZE as u64;
        let mut body = Vec::new();
        response
            .into_reader()
            .take(limit + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the body: {e}"))?;
        if body.len() as u64 > limit {
            return Err(format!("the body is larger than {limit} bytes"));
        }
        Ok((status, body))
    }
}

/// Resolves `host:port` with the system resolver. Blocks: run it on a blocking pool.
pub fn resolve(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, String> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| format!("resolving {host}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_certificates_is_refused() {
        let pem = RootCertificate::Pem(b"not a certificate".to_vec());
        assert!(matches!(
            HttpClient::new(&[pem], Duration::from_secs(1)),
            Err(CertificateError::Empty)
        ));
    }

    #[test]
    fn a_refused_connection_is_an_error() {
        let client = HttpClient::new(&[], Duration::from_secs(5)).unwrap();
        // Port 1 on loopback: nothing listens there.
        assert!(client.get("http://127.0.0.1:1/announce").is_err());
    }

    /// Serves one answer of `status` with `body` on 127.0.0.1; its port.
    fn serve_once(status: u16, body: Vec<u8>) -> u16 {
        use std::io::{BufRead as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        });
        port
    }

    #[test]
    fn a_body_over_the_cap_is_refused_and_an_error_status_keeps_its_body() {
        let client = HttpClient::new(&[], Duration::from_secs(10)).unwrap();
        let port = serve_once(200, vec![b'x'; MAX_RESPONSE_SIZE + 1]);
        let err = client
            .get(&format!("http://127.0.0.1:{port}/a"))
            .unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        let port = serve_once(200, vec![b'x'; MAX_RESPONSE_SIZE]);
        let (status, body) = client.get(&format!("http://127.0.0.1:{port}/a")).unwrap();
        assert_eq!((status, body.len()), (200, MAX_RESPONSE_SIZE));
        let port = serve_once(404, b"d14:failure reason4:nonee".to_vec());
        let answer = client.get(&format!("http://127.0.0.1:{port}/a")).unwrap();
        assert_eq!(answer, (404, b"d14:failure reason4:nonee".to_vec()));
    }

    #[test]
    fn loopback_resolves() {
        let addrs = resolve("localhost", 80).unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    }
}
