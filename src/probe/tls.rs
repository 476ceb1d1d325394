//! Stage 3: the TLS handshake (rustls, SNI = the route's host, ALPN `http/1.1` only: CF's
//! router does not carry WebSocket over HTTP/2). Records version, cipher and certificate,
//! and the exact verification failure, even with `-k`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::failure::{Failure, FailureKind};
use super::wire::{Recorded, WireLog, looks_like_http};

/// Trust settings shared by every probe of a run.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    verifier: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    insecure: bool,
}

impl TlsSetup {
    /// Mozilla's roots, or only the CAs in `cacert` (curl's `--cacert` semantics).
    pub fn new(cacert: Option<&Path>, insecure: bool) -> Result<Self, String> {
        match cacert {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| format!("--cacert {}: {e}", path.display()))?;
                Self::from_pem(&pem, insecure)
                    .map_err(|e| format!("--cacert {}: {e}", path.display()))
            }
            None => {
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                Self::with_roots(roots, insecure)
            }
        }
    }

    /// Trusts only the CA certificates in `pem`.
    pub fn from_pem(pem: &[u8], insecure: bool) -> Result<Self, String> {
        use rustls_pki_types::pem::PemObject;
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("not a PEM certificate file: {e}"))?;
        if certs.is_empty() {
            return Err("no PEM certificates in the file".to_owned());
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| e.to_string())?;
        }
        Self::with_roots(roots, insecure)
    }

    fn with_roots(roots: RootCertStore, insecure: bool) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
        Ok(Self {
            verifier,
            provider,
            insecure,
        })
    }
}

/// What the handshake showed.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct TlsInfo {
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
    /// Whether the certificate verified (false with `-k` and a bad certificate).
    pub verified: bool,
    /// Why it did not verify, in rustls' words.
    pub verification_error: Option<String>,
    pub certificate: Option<CertificateInfo>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    /// Days until `not_after` (negative: expired that many days ago).
    pub expires_in_days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateProblem {
    Untrusted,
    NameMismatch,
    Expired,
    Other,
}

#[derive(Debug, Clone)]
pub enum TlsFailure {
    /// The peer answered the ClientHello in plain HTTP: a plain port.
    PlainPeer(String),
    Certificate(CertificateProblem, String),
    Handshake(String),
    TimedOut,
}

/// What the verifier saw, kept for the report whatever the outcome.
#[derive(Debug, Default)]
struct Seen {
    end_entity: Option<CertificateDer<'static>>,
    error: Option<rustls::Error>,
}

/// Wraps the WebPKI verifier: records the certificate and the verdict; with `-k` accepts
/// anyway.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Seen>>,
    insecure: bool,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Ok(mut seen) = self.seen.lock() {
            seen.end_entity = Some(end_entity.clone().into_owned());
            seen.error = verdict.as_ref().err().cloned();
        }
        match verdict {
            Err(_) if self.insecure => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn classify_certificate_error(error: &rustls::Error) -> CertificateProblem {
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                CertificateProblem::Untrusted
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateProblem::NameMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => CertificateProblem::Expired,
            _ => CertificateProblem::Other,
        },
        _ => CertificateProblem::Other,
    }
}

fn describe_certificate(der: &CertificateDer<'_>) -> Option<CertificateInfo> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let sans = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::DNSName(d) => d.to_string(),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                        16 => {
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                                .to_string()
                        }
                        _ => format!("{ip:?}"),
                    },
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let validity = cert.validity();
    let fmt = |t: &ASN1Time| {
        t.to_datetime()
            .format(&::time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    let now = ::time::OffsetDateTime::now_utc();
    Some(CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: fmt(&validity.not_before),
        not_after: fmt(&validity.not_after),
        expires_in_days: (validity.not_after.to_datetime() - now).whole_days(),
    })
}

pub type Tls = TlsStream<Recorded<TcpStream>>;

/// Runs the TLS handshake on `tcp` for `host` within `budget`.
pub async fn handshake(
    setup: &TlsSetup,
    tcp: Recorded<TcpStream>,
    tcp_log: &WireLog,
    host: &str,
    budget: Duration,
) -> Result<(Tls, TlsInfo), (TlsFailure, Option<TlsInfo>)> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = Arc::new(RecordingVerifier {
        inner: setup.verifier.clone(),
        seen: seen.clone(),
        insecure: setup.insecure,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(setup.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| (TlsFailure::Handshake(e.to_string()), None))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = ServerName::try_from(host.to_owned()).map_err(|e| {
        (
            TlsFailure::Handshake(format!("invalid server name {host:?}: {e}")),
            None,
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    let result = tokio::time::timeout(budget, connector.connect(server_name, tcp)).await;
    let (certificate, verify_error) = {
        let seen = seen
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        (
            seen.end_entity.as_ref().and_then(describe_certificate),
            seen.error,
        )
    };
    let mut info = TlsInfo {
        verified: certificate.is_some() && verify_error.is_none(),
        verification_error: verify_error.as_ref().map(|e| e.to_string()),
        certificate,
        ..TlsInfo::default()
    };
    match result {
        Ok(Ok(stream)) => {
            let (_, connection) = stream.get_ref();
            info.version = connection
                .protocol_version()
                .map(|v| format!("{v:?}").replace('_', "."));
            info.cipher = connection
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()));
            info.alpn = connection
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            Ok((stream, info))
        }
        Ok(Err(io_error)) => {
            let first_bytes = tcp_log.lock().map(|w| w.read.clone()).unwrap_or_default();
            let failure = if let Some(error) = &verify_error {
                TlsFailure::Certificate(classify_certificate_error(error), error.to_string())
            } else if looks_like_http(&first_bytes) {
                let line = String::from_utf8_lossy(&first_bytes);
                let line = line.lines().next().unwrap_or_default().to_owned();
                TlsFailure::PlainPeer(format!(
                    "the peer answered the TLS ClientHello with plain HTTP: {line:?}"
                ))
            } else {
                TlsFailure::Handshake(io_error.to_string())
            };
            Err((failure, Some(info).filter(|i| i.certificate.is_some())))
        }
        Err(_) => Err((TlsFailure::TimedOut, None)),
    }
}

impl From<TlsFailure> for Failure {
    fn from(failure: TlsFailure) -> Self {
        match failure {
            TlsFailure::PlainPeer(m) => Failure::new(FailureKind::TlsToPlainPeer, m),
            TlsFailure::Certificate(problem, m) => Failure::new(
                match problem {
                    CertificateProblem::Untrusted => FailureKind::TlsCertUntrusted,
                    CertificateProblem::NameMismatch => FailureKind::TlsCertNameMismatch,
                    CertificateProblem::Expired => FailureKind::TlsCertExpired,
                    CertificateProblem::Other => FailureKind::TlsCertInvalid,
                },
                m,
            ),
            TlsFailure::Handshake(m) => Failure::new(FailureKind::TlsHandshakeFailed, m),
            TlsFailure::TimedOut => {
                Failure::new(FailureKind::TlsTimeout, "no TLS handshake in time")
            }
        }
    }
}

/// The stage as a probe runs it: the stream, or the failure; what was seen of the
/// certificate either way.
pub async fn stage(
    setup: &TlsSetup,
    tcp: Recorded<TcpStream>,
    tcp_log: &WireLog,
    host: &str,
    budget: Duration,
) -> (Result<Tls, Failure>, Option<TlsInfo>) {
    match handshake(setup, tcp, tcp_log, host, budget).await {
        Ok((stream, info)) => (Ok(stream), Some(info)),
        Err((failure, info)) => (Err(failure.into()), info),
    }
}
