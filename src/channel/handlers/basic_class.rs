//! The `basic` class: publish, consume, cancel, get, and settlement
//! (ack, nack, reject).

use super::*;

pub(super) fn basic_publish(conn: &Conn, cx: &Cx, ch: u16, p: basic::Publish) -> AmqpResult<()> {
    if p.immediate {
        return Err(AmqpError::not_implemented("immediate=true"));
    }
    if !conn.published.replace(true) && cx.conns.alarmed() {
        cx.conns.notify_blocked(conn, true);
    }
    // Permission check, cached per channel for the last exchange (the
    // common case publishes to one exchange) until permissions change.
    let epoch = cx.table().permission_epoch;
    let cached = with_channel(conn, ch, |c, _| {
        c.publish_allowed.as_ref().is_some_and(|(e, x)| {
            *e == epoch && crate::message::same(x.as_str(), p.exchange.as_str())
        })
    })
    .unwrap_or(false);
    if !cached {
        check(cx, conn, Access::Write, "exchange", p.exchange.as_str())?;
        with_channel(conn, ch, |c, _| {
            c.publish_allowed = Some((epoch, p.exchange.clone()))
        });
    }
    let vh = vhost(conn);
    if !p.exchange.as_str().is_empty() {
        let t = cx.table();
        match t.exchange(&vh, p.exchange.as_str()) {
            None => {
                return Err(crate::meta::authority::no_exchange(
                    p.exchange.as_str(),
                    &vh,
                ))
            }
            Some(x) if x.def.internal => {
                return Err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{}' in vhost '{vh}'",
                    p.exchange
                )))
            }
            _ => {}
        }
    }
    // After the exchange checks, as RabbitMQ orders them. Topic
    // permissions are per routing key, so not cached; the check is one
    // emptiness test while no topic permission exists.
    let (x, key) = (p.exchange.as_str(), p.routing_key.as_str());
    check_topic(cx, conn, Access::Write, x, key)?;
    with_channel(conn, ch, |c, _| c.publish = Some(PendingPublish::new(p)));
    Ok(())
}

pub(super) async fn basic_consume(
    conn: &Rc<Conn>,
    cx: &Cx,
    ch: u16,
    c: basic::Consume,
) -> AmqpResult<()> {
    if c.queue.as_str() == crate::channel::reply_to::DIRECT_REPLY_TO {
        return consume_direct_reply_to(conn, ch, &c);
    }
    let name = queue_name(conn, ch, c.queue.as_str())?;
    check(cx, conn, Access::Read, "queue", &name)?;
    let vh = vhost(conn);
    let (qid, home) = lookup_queue(cx, conn, &vh, &name)?;
    let tag = if c.consumer_tag.as_str().is_empty() {
        format!("amq.ctag-{}", crate::meta::authority::random_suffix())
    } else {
        c.consumer_tag.to_string()
    };
    // RabbitMQ's consumer priority; the plain `priority` argument some
    // frameworks send is ignored, as RabbitMQ ignores it.
    let priority = match c.arguments.inner().get("x-priority") {
        None => 0,
        Some(v) => crate::defs::arg_integer(v).ok_or_else(|| {
            AmqpError::precondition_failed(format!(
                "invalid arg 'x-priority' for queue '{name}' in vhost '{vh}': \"expected integer, got {}\"",
                crate::meta::queue_args::type_name(v)
            ))
        })?,
    };
    let prefetch = {
        let st = conn.state.borrow();
        let Some(chan) = st.channels.get(&ch) else {
            return Ok(());
        };
        let reply_tag = chan.reply_consumer.as_ref().is_some_and(|r| *r.tag == *tag);
        if chan.consumers.contains_key(&tag) || reply_tag {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        chan.prefetch
    };
    let id: ConsumerId = cx.conns.new_consumer_id();
    // Register the route first so deliveries that race the reply land.
    cx.conns.consumers.borrow_mut().insert(
        id,
        ConsumerRoute {
            conn: conn.id,
            channel: ch,
            tag: Rc::from(tag.as_str()),
            no_ack: c.no_ack,
            timeout_ms: crate::channel::ack_timeout::queue_timeout(cx, qid),
        },
    );
    with_channel(conn, ch, |chan, _| {
        chan.consumers.insert(
            tag.clone(),
            ChannelConsumer {
                id,
                queue: qid,
                home,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
            },
        )
    });
    let spec = ConsumerSpec {
        id,
        conn: conn.id,
        channel: ch,
        tag: tag.clone(),
        no_ack: c.no_ack,
        exclusive: c.exclusive,
        prefetch,
        priority,
    };
    // consume-ok must precede the first delivery: hold deliveries by
    // writing the reply before the queue can dispatch (the queue only
    // dispatches once it has processed this request, after which its
    // deliveries queue up behind our reply in the write buffer only if we
    // write the reply first). So pause flow for this channel until then.
    with_channel(conn, ch, |chan, _| chan.flow_active = false);
    let result = match cx.call(home, Request::Consume(qid, spec)).await {
        Response::Consumed(r) => r,
        _ => Err(no_queue(&name, &vh)),
    };
    let mut resume_flow = false;
    match &result {
        Ok(()) => {
            if !c.nowait {
                reply(
                    conn,
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                        consumer_tag: tag.clone().into(),
                    })),
                );
            }
            resume_flow = true;
        }
        Err(_) => {
            cx.conns.consumers.borrow_mut().remove(&id);
            with_channel(conn, ch, |chan, _| chan.consumers.remove(&tag));
        }
    }
    with_channel(conn, ch, |chan, _| chan.flow_active = true);
    if resume_flow {
        conn.release_held(ch);
    }
    result
}

/// basic.consume on the direct reply-to pseudo-queue (see
/// `channel::reply_to` for the rules and RabbitMQ's error texts). No
/// permission applies: the consumer reads only replies addressed to it.
fn consume_direct_reply_to(conn: &Conn, ch: u16, c: &basic::Consume) -> AmqpResult<()> {
    let tag = with_channel(conn, ch, |chan, _| {
        crate::channel::reply_to::consume(conn.id, chan, c)
    })
    .unwrap_or_else(|| Err(AmqpError::channel_error("expected 'channel.open'")))?;
    if !c.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                consumer_tag: tag.into(),
            })),
        );
    }
    Ok(())
}

pub(super) async fn basic_cancel(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    c: basic::Cancel,
) -> AmqpResult<()> {
    let tag = c.consumer_tag.to_string();
    let found = with_channel(conn, ch, |chan, _| chan.consumers.remove(&tag)).flatten();
    if let Some(cons) = found {
        cx.call(cons.home, Request::Cancel(cons.queue, cons.id))
            .await;
        cx.conns.consumers.borrow_mut().remove(&cons.id);
    } else {
        with_channel(conn, ch, |chan, _| {
            crate::channel::reply_to::cancel(chan, &tag)
        });
    }
    if !c.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: tag.into(),
            })),
        );
    }
    Ok(())
}

pub(super) async fn basic_get(conn: &Conn, cx: &Cx, ch: u16, g: basic::Get) -> AmqpResult<()> {
    let name = queue_name(conn, ch, g.queue.as_str())?;
    check(cx, conn, Access::Read, "queue", &name)?;
    let vh = vhost(conn);
    let (qid, home) = lookup_queue(cx, conn, &vh, &name)?;
    let got = match cx
        .call(
            home,
            Request::Get {
                queue: qid,
                no_ack: g.no_ack,
            },
        )
        .await
    {
        Response::Got(g) => g,
        _ => return Err(no_queue(&name, &vh)),
    };
    let Some(got) = got else {
        cx.conns.counters.borrow_mut().get_empty += 1;
        reply(
            conn,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
        );
        return Ok(());
    };
    let timeout = crate::channel::ack_timeout::queue_timeout(cx, qid);
    let tag = with_channel(conn, ch, |c, _| {
        // Closed by the broker while the get was on its way (the consumer
        // timeout): the message goes back, as if the channel had vanished.
        if c.closing {
            return None;
        }
        let t = c.next_tag;
        c.next_tag += 1;
        c.stats.deliver += 1;
        {
            let mut k = cx.conns.counters.borrow_mut();
            if g.no_ack {
                k.delivered_get_auto_ack += 1;
            } else {
                k.delivered_get_manual_ack += 1;
            }
            k.redelivered += u64::from(got.redelivered);
        }
        if !g.no_ack {
            c.unacked.insert(
                t,
                Unacked {
                    queue: qid,
                    home,
                    seq: got.seq,
                    deadline: crate::channel::ack_timeout::deadline(timeout),
                    timeout_ms: timeout.min(u64::from(u32::MAX)) as u32,
                },
            );
        }
        Some(t)
    })
    .flatten();
    let Some(tag) = tag else {
        // Channel vanished meanwhile: give the message back.
        if !g.no_ack {
            settle_grouped(
                cx,
                [Unacked {
                    queue: qid,
                    home,
                    seq: got.seq,
                    deadline: 0,
                    timeout_ms: 0,
                }],
                Settle::Requeue,
            );
        }
        return Ok(());
    };
    let mut out = conn.out.borrow_mut();
    crate::codec::write_method(
        &mut out,
        ch,
        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: tag,
            redelivered: got.redelivered,
            exchange: got.msg.exchange.clone(),
            routing_key: got.msg.routing_key.clone(),
            message_count: got.remaining,
        })),
    );
    crate::codec::write_content(
        &mut out,
        ch,
        &got.msg.props,
        &got.msg.body,
        conn.frame_max.get(),
    );
    drop(out);
    conn.out_notify.notify();
    Ok(())
}

/// basic.ack / nack / reject from the fast path.
pub fn settle_fast(conn: &Conn, cx: &Cx, ch: u16, s: crate::codec::fast::Settle) -> AmqpResult<()> {
    use crate::codec::fast::Settle as S;
    if !ready_for_method(conn, ch)? {
        return Ok(());
    }
    match s {
        S::Ack { tag, multiple } => basic_settle(conn, cx, ch, tag, multiple, Settle::Ack),
        S::Nack {
            tag,
            multiple,
            requeue,
        } => basic_settle(
            conn,
            cx,
            ch,
            tag,
            multiple,
            if requeue {
                Settle::Requeue
            } else {
                Settle::Discard
            },
        ),
        S::Reject { tag, requeue } => basic_settle(
            conn,
            cx,
            ch,
            tag,
            false,
            if requeue {
                Settle::Requeue
            } else {
                Settle::Discard
            },
        ),
    }
}

pub(super) fn basic_settle(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    tag: u64,
    multiple: bool,
    how: Settle,
) -> AmqpResult<()> {
    let result = with_channel(conn, ch, |c, _| -> AmqpResult<Vec<(u64, Unacked)>> {
        let taken: Vec<(u64, Unacked)> = if multiple {
            // Deliveries still held back were never seen by the client.
            let held_from = c.held.front().map(|h| h.delivery_tag).unwrap_or(u64::MAX);
            let keys: Vec<u64> = if tag == 0 {
                c.unacked.range(..held_from).map(|(k, _)| *k).collect()
            } else {
                c.unacked
                    .range(..=tag.min(held_from.saturating_sub(1)))
                    .map(|(k, _)| *k)
                    .collect()
            };
            // RabbitMQ: `multiple` up to a tag that is not outstanding
            // (already settled, or never issued) settles nothing: 406.
            if tag != 0 && (keys.is_empty() || !c.unacked.contains_key(&tag)) {
                return Err(AmqpError::precondition_failed(format!(
                    "unknown delivery tag {tag}"
                )));
            }
            keys.into_iter()
                .filter_map(|k| c.unacked.remove(&k).map(|u| (k, u)))
                .collect()
        } else {
            let held = c.held.front().is_some_and(|h| tag >= h.delivery_tag);
            let found = if held { None } else { c.unacked.remove(&tag) };
            match found {
                Some(u) => vec![(tag, u)],
                None => {
                    return Err(AmqpError::precondition_failed(format!(
                        "unknown delivery tag {tag}"
                    )))
                }
            }
        };
        if how == Settle::Ack {
            c.stats.ack += taken.len() as u64;
            cx.conns.counters.borrow_mut().acknowledged += taken.len() as u64;
        }
        if let Some(tx) = &mut c.tx {
            tx.push(TxOp::Settle { tags: taken, how });
            return Ok(Vec::new());
        }
        Ok(taken)
    });
    let taken = result.unwrap_or(Ok(Vec::new()))?;
    settle_grouped(cx, taken.into_iter().map(|(_, u)| u), how);
    conn.release_held(ch);
    conn.resume_paused(cx, ch);
    Ok(())
}
