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
        let (added, skipped) = roots.add_parsable_certificates(cas);
        if skipped > 0 {
            tracing::warn!(file = %ca.display(), skipped, "tls.ca_file: certificates skipped (unparsable)");
        }
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

/// RabbitMQ's attribute type names (`rabbit_cert_info:format_rdn`); any
/// other type is written as its dotted OID.
const RDN_NAMES: &[(&str, &str)] = &[
    ("2.5.4.4", "SN"),
    ("2.5.4.42", "GIVENNAME"),
    ("2.5.4.43", "INITIALS"),
    ("2.5.4.44", "GENERATIONQUALIFIER"),
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "TITLE"),
    ("2.5.4.6", "C"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.65", "PSEUDONYM"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "EMAILADDRESS"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// An attribute value as text: the directory string types RabbitMQ reads
/// (UTF-8, printable, IA5, teletex as Latin-1, BMP as UCS-2, universal as
/// UCS-4). None for anything else, so a name is never built from a value
/// that could not be read (two certificates must not share a name because
/// their values were unreadable).
fn attribute_text(a: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<String> {
    if let Ok(s) = a.as_str() {
        return Some(s.to_string());
    }
    let v = a.attr_value();
    let data: &[u8] = v.data;
    match v.tag().0 {
        // TeletexString (T61): read as Latin-1, as RabbitMQ does.
        20 => Some(data.iter().map(|&b| b as char).collect()),
        // UniversalString: UCS-4, big-endian.
        28 if data.len().is_multiple_of(4) => data
            .chunks(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        // BMPString: UCS-2, big-endian.
        30 if data.len().is_multiple_of(2) => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// A name (subject or issuer) as RabbitMQ formats it
/// (`rabbit_cert_info:format_rdn_sequence`): the RDNs in reverse order
/// (RFC 4514), `TYPE=value` joined by `,`, multi-valued RDNs by `+`. None
/// if a value cannot be read.
fn format_name(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut parts = Vec::new();
        for a in rdn.iter() {
            let oid = a.attr_type().to_id_string();
            let ty = RDN_NAMES
                .iter()
                .find(|(o, _)| *o == oid)
                .map(|(_, n)| n.to_string())
                .unwrap_or(oid);
            parts.push(format!("{ty}={}", escape_rdn_value(&attribute_text(a)?)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 4514 escaping as RabbitMQ does it (`escape_rdn_value`): a leading
/// space or `#` and a trailing space get a backslash, as do `"` `+` `,`
/// `;` `<` `>` `\`; every byte below 32 or from 126 up (so each byte of a
/// non-ASCII character's UTF-8 encoding) becomes `\XX` in upper-case hex.
fn escape_rdn_value(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = String::with_capacity(v.len());
    for (i, &c) in bytes.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == bytes.len();
        let edge_space = (first || last) && c == b' ';
        let special = matches!(c, b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\');
        if edge_space || (first && c == b'#') || special {
            out.push('\\');
            out.push(c as char);
        } else if !(32..126).contains(&c) {
            out.push_str(&format!("\\{c:02X}"));
        } else {
            out.push(c as char);
        }
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
            info.peer_cert_subject = format_name(x.subject());
            info.peer_cert_issuer = format_name(x.issuer());
            // Every CN, joined by "," as RabbitMQ's common_name mode does;
            // None if there is none or one cannot be read.
            let cns: Option<Vec<String>> =
                x.subject().iter_common_name().map(attribute_text).collect();
            info.peer_cert_cn = cns.filter(|c| !c.is_empty()).map(|c| c.join(","));
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
    fn rdn_values_are_escaped_as_rabbitmq_escapes_them() {
        assert_eq!(escape_rdn_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rdn_value(" lead"), "\\ lead");
        assert_eq!(escape_rdn_value("#x"), "\\#x");
        assert_eq!(escape_rdn_value("trail "), "trail\\ ");
        assert_eq!(escape_rdn_value(" "), "\\ ");
        assert_eq!(escape_rdn_value("plain"), "plain");
        // `~`, control bytes and each UTF-8 byte of "é" as \XX.
        assert_eq!(escape_rdn_value("a~b"), "a\\7Eb");
        assert_eq!(escape_rdn_value("x\ty"), "x\\09y");
        assert_eq!(escape_rdn_value("é"), "\\C3\\A9");
    }

    #[test]
    fn names_are_formatted_as_rabbitmq_formats_them() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let dn = &mut params.distinguished_name;
        dn.push(rcgen::DnType::CountryName, "GB");
        dn.push(rcgen::DnType::OrganizationName, "Example, Ltd");
        dn.push(rcgen::DnType::OrganizationalUnitName, "Ops");
        dn.push(rcgen::DnType::CommonName, "alice");
        dn.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("alice@example.com".try_into().unwrap()),
        );
        dn.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 13]), "desc");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        // rcgen encodes the CN first, then the rest in push order; the
        // name lists the RDNs last to first.
        assert_eq!(
            format_name(x.subject()).unwrap(),
            "2.5.4.13=desc,EMAILADDRESS=alice@example.com,OU=Ops,O=Example\\, Ltd,C=GB,CN=alice"
        );
    }
}
