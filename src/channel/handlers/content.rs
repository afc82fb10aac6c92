//! Content frames: the content header and body frames that follow a
//! `basic.publish` (spec 4.2.6), and the fast paths for publish and
//! settlement frames decoded without the generic parser.

use super::*;

/// A content header frame on channel `ch`. Errors: 504 if the channel is not
/// open; 505 without a pending basic.publish, for a class other than 60 (basic)
/// or a second header; 406 if `user-id` is not the authenticated user, for an
/// invalid `expiration`, or a body-size above `max_message_size`; 403 if a
/// topic permission refuses a CC/BCC key. A body-size
/// of 0 publishes the message at once; frames on a closing channel are dropped.
#[allow(clippy::too_many_arguments)]
pub fn content_header(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    class_id: u16,
    body_size: u64,
    props_raw: Bytes,
    view: crate::codec::fast::PropsView,
    headers: Option<amq_protocol::types::FieldTable>,
) -> AmqpResult<()> {
    let max = cx.link.config.max_message_size;
    let mut guard = conn.state.borrow_mut();
    // Reborrowed so the user and the channel can be borrowed together.
    let st = &mut *guard;
    let vhost = st.vhost.clone();
    let user_mismatch = view
        .user_id
        .as_ref()
        .filter(|uid| **uid != st.user)
        .map(|uid| (uid.clone(), st.user.clone()));
    let Some(c) = st.channels.get_mut(&ch) else {
        return Err(AmqpError::channel_error("expected 'channel.open'"));
    };
    if c.closing {
        return Ok(());
    }
    let Some(p) = c.publish.as_mut() else {
        return Err(AmqpError::unexpected_frame(
            "expected method frame, got non method frame instead",
        ));
    };
    if class_id != 60 || p.header.is_some() {
        return Err(AmqpError::unexpected_frame(
            "expected content body, got content header",
        ));
    }
    if let Some((uid, user)) = user_mismatch {
        return Err(AmqpError::precondition_failed(format!(
            "user_id property set to '{uid}' but authenticated user was '{user}'"
        )));
    }
    // CC/BCC and direct reply-to change the properties: decode them once,
    // re-encode once (a copy of the properties only, never of the body).
    let bcc = match &headers {
        Some(h) => crate::channel::sender_routes::check(h)?,
        None => false,
    };
    // The CC/BCC keys route like the routing key, so a topic permission
    // checks them too (RabbitMQ 4.0.3+; 3.10 checked the routing key only,
    // which let a CC header route past the permission).
    if crate::channel::sender_routes::has_extra(headers.as_ref()) {
        let mut keys: smallvec::SmallVec<[&str; 4]> = smallvec::SmallVec::new();
        crate::channel::sender_routes::extra_keys(headers.as_ref(), &mut keys);
        let t = cx.table();
        for k in keys {
            crate::meta::access::topic(
                &t,
                &st.user,
                &vhost,
                Access::Write,
                p.exchange.as_str(),
                k,
            )?;
        }
    }
    let props_raw = if bcc || view.reply_to_direct {
        let (_, mut props) = basic::parse_properties(&props_raw[..])
            .map_err(|_| AmqpError::frame_error("unable to parse content header"))?;
        if bcc {
            props = crate::channel::sender_routes::strip_bcc(props);
        }
        if view.reply_to_direct {
            props = crate::channel::reply_to::rewrite_reply_to(c.reply_consumer.as_ref(), props)?;
        }
        crate::codec::encode_properties(&props)
    } else {
        props_raw
    };
    let expiration_ms = match &view.expiration {
        None => None,
        Some(e) => Some(crate::message::parse_expiration(e).map_err(|why| {
            AmqpError::precondition_failed(format!("invalid expiration '{e}': {why}"))
        })?),
    };
    let header = Header {
        body_size,
        props_raw,
        delivery_mode: view.delivery_mode,
        expiration_ms,
        priority: view.priority.unwrap_or(0),
        headers,
    };
    let progress = p.on_header(header, max)?;
    finish(cx, conn, &vhost, c, progress);
    Ok(())
}

/// Checks every method on a channel needs first. Ok(false): the channel is
/// closing and the frame is dropped, as the spec asks.
pub fn ready_for_method(conn: &Conn, ch: u16) -> AmqpResult<bool> {
    let st = conn.state.borrow();
    let Some(c) = st.channels.get(&ch) else {
        return Err(AmqpError::channel_error("expected 'channel.open'"));
    };
    if c.closing {
        return Ok(false);
    }
    match c.publish.as_ref().map(|p| p.header.is_some()) {
        Some(false) => Err(AmqpError::unexpected_frame(
            "expected content header for class 60, got non content header frame instead",
        )),
        Some(true) => Err(AmqpError::unexpected_frame(
            "expected content body, got non content body frame instead",
        )),
        None => Ok(true),
    }
}

/// basic.publish from the fast path.
pub fn publish_fast(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    p: crate::codec::fast::Publish,
) -> AmqpResult<()> {
    if !ready_for_method(conn, ch)? {
        return Ok(());
    }
    basic_publish(
        conn,
        cx,
        ch,
        basic::Publish {
            exchange: p.exchange,
            routing_key: p.routing_key,
            mandatory: p.mandatory,
            immediate: p.immediate,
        },
    )
}

/// A content body frame on channel `ch`: appended to the pending basic.publish,
/// which is routed once body-size bytes are in. Errors: 504 if the channel is
/// not open; 505 without a pending publish or header; 501 if the body exceeds
/// its header's body-size.
pub fn content_body(conn: &Conn, cx: &Cx, ch: u16, body: Bytes) -> AmqpResult<()> {
    let mut st = conn.state.borrow_mut();
    let vhost = st.vhost.clone();
    let Some(c) = st.channels.get_mut(&ch) else {
        return Err(AmqpError::channel_error("expected 'channel.open'"));
    };
    if c.closing {
        return Ok(());
    }
    let Some(p) = c.publish.as_mut() else {
        return Err(AmqpError::unexpected_frame(
            "expected method frame, got non method frame instead",
        ));
    };
    let progress = p.on_body(body)?;
    finish(cx, conn, &vhost, c, progress);
    Ok(())
}

pub(super) fn finish(cx: &Cx, conn: &Conn, vhost: &str, c: &mut Channel, progress: Progress) {
    if let Progress::Done(msg, mandatory, headers) = progress {
        c.publish = None;
        publish_complete(cx, conn, vhost, c, msg, mandatory, headers);
    }
}
