//! The `channel` class: channel.open, channel.close, channel.flow.

use super::*;

pub(super) async fn channel_open(conn: &Conn, cx: &Cx, ch: u16, exists: bool) -> AmqpResult<()> {
    if exists {
        return Err(AmqpError::channel_error("second 'channel.open' seen"));
    }
    // Like RabbitMQ, channel_max bounds the number of open channels.
    let (max, open) = {
        let st = conn.state.borrow();
        (st.channel_max, st.channels.len())
    };
    if max > 0 && open >= max as usize {
        return Err(AmqpError::not_allowed(format!(
            "number of channels opened ({open}) has reached the negotiated channel_max ({max})"
        )));
    }
    conn.state
        .borrow_mut()
        .channels
        .insert(ch, Channel::new(ch));
    crate::channel::limits::admit_channel(cx, conn, ch).await?;
    let vh = vhost(conn);
    with_channel(conn, ch, |c, _| c.stats.vhost = vh);
    cx.conns.counters.borrow_mut().channels_opened += 1;
    reply(
        conn,
        ch,
        AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
    );
    Ok(())
}

pub(super) fn channel_close(conn: &Conn, cx: &Cx, ch: u16) -> AmqpResult<()> {
    let removed = conn.state.borrow_mut().channels.remove(&ch);
    if let Some(mut c) = removed {
        conn.release_channel(cx, &mut c);
    }
    reply(
        conn,
        ch,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );
    Ok(())
}

pub(super) fn channel_flow(conn: &Conn, ch: u16, active: bool) -> AmqpResult<()> {
    with_channel(conn, ch, |c, _| c.flow_active = active);
    if active {
        conn.release_held(ch);
    }
    reply(
        conn,
        ch,
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })),
    );
    Ok(())
}
