//! TLS for AMQP (`amqps`, RabbitMQ's `listeners.ssl`), with rustls.
//!
//! Owns: building a shard's `rustls::ServerConfig` from the configured PEM
//! files, the server side of the handshake (bounded by a timeout), and what
//! a finished handshake tells the broker ([`TlsInfo`]: protocol, cipher
//! suite, the verified client certificate's subject for EXTERNAL logins).
//! Must never: block the executor (files are read at start-up, before the
//! shard listens), or accept a client certificate it did not verify.
//!
//! Each shard builds its own `ServerConfig` (rustls keeps a session cache
//! behind a lock; a per-shard copy keeps that lock uncontended and off
//! every other shard). The decrypted bytes are copied once, from rustls's
//! buffer into the connection's read buffer; that copy is TLS's, the
//! plain-TCP path has none.

use super::{SharedStream, Stream};
use crate::config::{CertLoginFrom, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;

/// Build the server configuration from `t`'s PEM files. The error names the
/// file and what is wrong with it (start-up refuses to run without TLS when
/// TLS was asked for).
pub fn server_config(t: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", t.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate in it",
            t.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| format!("tls.key_file {}: {e}", t.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if t.verify_peer {
        let ca = t
            .ca_file
            .as_ref()
            .ok_or("tls.verify_peer needs tls.ca_file")?;
        let mut roots = rustls::RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))?;
        let (added, _) = roots.add_parsable_certificates(cas);
        if added == 0 {
            return Err(format!(
                "tls.ca_file {}: no usable CA certificate",
                ca.display()
            ));
        }
        let v =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let v = if t.fail_if_no_peer_cert {
            v
        } else {
            v.allow_unauthenticated()
        };
        let verifier = v.build().map_err(|e| format!("tls.ca_file: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert_file/tls.key_file: {e}"))?;
    Ok(Arc::new(cfg))
}

/// What a finished TLS handshake tells the broker, for `/api/connections`
/// and EXTERNAL logins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// `tlsv1.3` or `tlsv1.2` (RabbitMQ's `ssl_protocol` spelling).
    pub protocol: String,
    /// The negotiated cipher suite (RabbitMQ's `ssl_cipher`).
    pub cipher: String,
    /// The verified client certificate's subject, `CN=..,O=..` as
    /// RabbitMQ's `peer_cert_subject`; None without a client certificate.
    pub peer_cert_subject: Option<String>,
    /// Its issuer, in the same format (`peer_cert_issuer`).
    pub peer_cert_issuer: Option<String>,
    /// Its subject's common name.
    pub peer_cert_cn: Option<String>,
}

impl TlsInfo {
    /// The user name an EXTERNAL login takes (RabbitMQ's
    /// `rabbit_auth_mechanism_ssl`): None without a verified certificate
    /// (or without a common name when that is what names the user).
    pub fn external_login(&self, from: CertLoginFrom) -> Option<&str> {
        match from {
            CertLoginFrom::DistinguishedName => self.peer_cert_subject.as_deref(),
            CertLoginFrom::CommonName => self.peer_cert_cn.as_deref(),
        }
    }
}

/// A name (subject or issuer) as RabbitMQ formats it
/// (`rabbit_cert_info:format_rdn_sequence`): the RDNs in reverse order
/// (RFC 4514), `TYPE=value` joined by `,`, multi-valued RDNs by `+`.
fn format_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|a| {
                    let ty = x509_parser::objects::oid2abbrev(a.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| a.attr_type().to_id_string());
                    let value = a.as_str().map(escape_rdn_value).unwrap_or_default();
                    format!("{ty}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 4514 escaping of an attribute value (`,` `+` `"` `\` `<` `>` `;`,
/// a leading `#` or space, a trailing space).
fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn describe(conn: &rustls::ServerConnection) -> TlsInfo {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2",
        _ => "unknown",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    let mut info = TlsInfo {
        protocol: protocol.into(),
        cipher,
        ..TlsInfo::default()
    };
    // rustls only hands back certificates its verifier accepted.
    if let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) {
        if let Ok((_, x)) = x509_parser::parse_x509_certificate(cert.as_ref()) {
            info.peer_cert_subject = Some(format_name(x.subject()));
            info.peer_cert_issuer = Some(format_name(x.issuer()));
            info.peer_cert_cn = x
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string);
        }
    }
    info
}

/// Server side of the handshake on an accepted socket, at most `timeout`
/// (the same bound as the AMQP handshake's: a peer that stalls is
/// dropped). The stream, ready for AMQP, and what the handshake settled.
pub async fn accept(
    acceptor: &futures_rustls::TlsAcceptor,
    tcp: glommio::net::TcpStream,
    timeout: Duration,
) -> std::io::Result<(SharedStream, TlsInfo)> {
    let handshake = acceptor.accept(tcp);
    let tls = futures_lite::future::or(async { Some(handshake.await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await
    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timeout"))??;
    let info = describe(tls.get_ref().1);
    Ok((SharedStream::from_stream(Stream::Tls(Box::new(tls))), info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdn_values_are_escaped_as_rfc_4514_says() {
        assert_eq!(escape_rdn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rdn_value(" lead"), "\\ lead");
        assert_eq!(escape_rdn_value("#x"), "\\#x");
        assert_eq!(escape_rdn_value("trail "), "trail\\ ");
        assert_eq!(escape_rdn_value("plain"), "plain");
    }
}
