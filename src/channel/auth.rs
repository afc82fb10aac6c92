//! Login: the SASL mechanisms offered in connection.start and the check of
//! connection.start-ok's credentials (PLAIN, AMQPLAIN, EXTERNAL), with
//! RabbitMQ's rules and reply texts. Reads the users table; never blocks.

use super::{Conn, Cx};
use crate::config::AuthMechanism;
use crate::error::{AmqpError, AmqpResult};
use amq_protocol::types::AMQPValue;

/// Whether `m` is offered on `conn`: configured in `auth_mechanisms`, and
/// for EXTERNAL a TLS connection (with or without a client certificate,
/// as RabbitMQ's `rabbit_auth_mechanism_ssl:should_offer`: a missing
/// certificate is then refused with a clear log line rather than leaving
/// the client without a mechanism).
fn offered(cx: &Cx, conn: &Conn, m: AuthMechanism) -> bool {
    cx.link.config.auth_mechanisms.contains(&m)
        && (m != AuthMechanism::External || conn.transport.tls().is_some())
}

/// The space-separated mechanisms for connection.start, in configured order.
pub(super) fn mechanisms(cx: &Cx, conn: &Conn) -> String {
    let list: Vec<&str> = cx
        .link
        .config
        .auth_mechanisms
        .iter()
        .filter(|m| offered(cx, conn, **m))
        .map(|m| m.name())
        .collect();
    list.join(" ")
}

/// Check SASL credentials against the users table: PLAIN and AMQPLAIN by
/// password; EXTERNAL by the verified client certificate's subject (or
/// common name, `ssl_cert_login_from`), which must name an existing user,
/// as RabbitMQ's `rabbit_auth_mechanism_ssl`. Returns the user and the
/// mechanism; 403 ACCESS_REFUSED with RabbitMQ's text otherwise.
pub(super) fn authenticate(
    cx: &Cx,
    conn: &Conn,
    mechanism: &str,
    response: &[u8],
) -> AmqpResult<(String, AuthMechanism)> {
    let refused = || {
        AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ))
    };
    // rabbit_reader: a mechanism the broker does not know, or does not
    // offer on this connection, is a 503 error, answered (as the session
    // does for a 503 before login) by closing the socket after a delay.
    let Some(m) = AuthMechanism::from_name(mechanism) else {
        return Err(AmqpError::command_invalid(format!(
            "unknown authentication mechanism '{mechanism}'"
        )));
    };
    if !offered(cx, conn, m) {
        return Err(AmqpError::command_invalid(format!(
            "invalid authentication mechanism '{mechanism}'"
        )));
    }
    if m == AuthMechanism::External {
        let from = cx.link.config.ssl_cert_login_from;
        let Some(user) = conn.transport.tls().and_then(|t| t.external_login(from)) else {
            tracing::warn!(
                peer = %conn.peer,
                "EXTERNAL login refused: connection peer presented no TLS (x.509) certificate"
            );
            return Err(refused());
        };
        if !cx.table().users.contains_key(user) {
            tracing::warn!(peer = %conn.peer, user, "EXTERNAL login: no such user");
            return Err(refused());
        }
        guest_only_from_loopback(cx, conn, user, refused)?;
        return Ok((user.to_string(), m));
    }
    let (user, pass) = match m {
        AuthMechanism::Plain => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next();
            let user = parts.next().ok_or_else(refused)?;
            let pass = parts.next().ok_or_else(refused)?;
            (
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            )
        }
        AuthMechanism::Amqplain => {
            let mut buf = (response.len() as u32).to_be_bytes().to_vec();
            buf.extend_from_slice(response);
            let (_, table) =
                amq_protocol::types::parsing::parse_field_table(&buf[..]).map_err(|_| refused())?;
            let get = |k: &str| match table.inner().get(k) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
                _ => None,
            };
            (
                get("LOGIN").ok_or_else(refused)?,
                get("PASSWORD").ok_or_else(refused)?,
            )
        }
        AuthMechanism::External => return Err(refused()),
    };
    let ok = cx
        .table()
        .users
        .get(&user)
        .is_some_and(|u| u.check_password(&pass));
    if !ok {
        tracing::warn!(peer = %conn.peer, user, "authentication failed");
        return Err(refused());
    }
    guest_only_from_loopback(cx, conn, &user, refused)?;
    Ok((user, m))
}

fn guest_only_from_loopback(
    cx: &Cx,
    conn: &Conn,
    user: &str,
    refused: impl Fn() -> AmqpError,
) -> AmqpResult<()> {
    // Like RabbitMQ, the default guest user may only connect from loopback.
    // An IPv4 client on a dual-stack listener shows as ::ffff:a.b.c.d.
    let ip = match conn.peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(std::net::IpAddr::V6(v6)),
        v4 => v4,
    };
    if user == "guest" && !ip.is_loopback() && !cx.link.config.guest_remote {
        tracing::warn!(peer = %conn.peer, "guest refused from a non-loopback address");
        return Err(refused());
    }
    Ok(())
}
