//! The `queue` class: queue.declare, queue.purge, queue.delete (bind and
//! unbind are in `exchange_class`).

use super::*;

pub(super) async fn queue_declare(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    d: queue::Declare,
) -> AmqpResult<()> {
    // The direct reply-to pseudo-queue "exists" for every channel: RabbitMQ
    // answers any declare of it with 0 messages and 1 consumer.
    if d.queue.as_str() == crate::channel::reply_to::DIRECT_REPLY_TO {
        if !d.nowait {
            reply(
                conn,
                ch,
                AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                    queue: d.queue,
                    message_count: 0,
                    consumer_count: 1,
                })),
            );
        }
        return Ok(());
    }
    // A server-named queue gets its name here, so the configure permission
    // is checked against the name it will really have (as RabbitMQ does).
    let server_named = d.queue.as_str().is_empty() && !d.passive;
    let name = if server_named {
        format!("amq.gen-{}", crate::meta::authority::random_suffix())
    } else {
        d.queue.to_string()
    };
    if !d.passive {
        check(cx, conn, Access::Configure, "queue", &name)?;
    }
    let nowait = d.nowait;
    let op = MetaOp::QueueDeclare {
        vhost: vhost(conn),
        name,
        server_named,
        passive: d.passive,
        durable: d.durable,
        exclusive: d.exclusive,
        auto_delete: d.auto_delete,
        args: d.arguments,
        owner: conn.id,
    };
    let MetaReply::QueueDeclared {
        name,
        messages,
        consumers,
    } = meta(cx, op).await?
    else {
        return Err(AmqpError::internal_error("bad reply to queue.declare"));
    };
    with_channel(conn, ch, |c, _| c.last_queue = Some(name.clone()));
    cx.conns.counters.borrow_mut().queues_declared += 1;
    if !nowait {
        reply(
            conn,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: name.into(),
                message_count: messages,
                consumer_count: consumers,
            })),
        );
    }
    Ok(())
}

pub(super) async fn queue_purge(conn: &Conn, cx: &Cx, ch: u16, p: queue::Purge) -> AmqpResult<()> {
    let name = queue_name(conn, ch, p.queue.as_str())?;
    check(cx, conn, Access::Read, "queue", &name)?;
    let vh = vhost(conn);
    let (id, home) = lookup_queue(cx, conn, &vh, &name)?;
    let n = match cx.call(home, Request::Purge(id)).await {
        Response::Purged(n) => n,
        _ => return Err(no_queue(&name, &vh)),
    };
    if !p.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                message_count: n,
            })),
        );
    }
    Ok(())
}

pub(super) async fn queue_delete(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    d: queue::Delete,
) -> AmqpResult<()> {
    let name = queue_name(conn, ch, d.queue.as_str())?;
    check(cx, conn, Access::Configure, "queue", &name)?;
    let op = MetaOp::QueueDelete {
        vhost: vhost(conn),
        name,
        if_unused: d.if_unused,
        if_empty: d.if_empty,
        owner: Some(conn.id),
        only: None,
        if_idle: false,
    };
    let messages = match meta(cx, op).await? {
        MetaReply::Deleted { messages } => messages,
        _ => 0,
    };
    if !d.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count: messages,
            })),
        );
    }
    Ok(())
}
