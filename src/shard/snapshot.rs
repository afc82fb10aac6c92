//! This shard's statistics snapshot for the management API
//! (`Request::Snapshot`): one walk over its connections, channels and
//! queues, reading counters only.

use super::Shard;
use crate::bus::stats::*;
use crate::ids::QueueId;

/// Take this shard's snapshot (runs on the shard itself).
pub(crate) fn snapshot(shard: &Shard) -> ShardSnapshot {
    let mut s = ShardSnapshot {
        shard: shard.id().0,
        ..Default::default()
    };
    let table = shard.link.table();
    let qname = |id: QueueId| {
        table
            .queue_by_id(id)
            .map(|q| (q.vhost.clone(), q.name.clone()))
            .unwrap_or_default()
    };
    let now = std::time::Instant::now();
    let mut exchanges: Vec<ExchangeCounts> = shard.conns.closed_exchange_stats.borrow().clone();
    for conn in shard.conns.conns.borrow().values() {
        if !conn.open.get() {
            continue;
        }
        let st = conn.state.borrow();
        let port = shard.conns.port_of(conn);
        let name = shard.conns.name_of(conn);
        let peer_host = conn.peer.ip().to_string();
        s.connections.push(ConnInfo {
            name: name.clone(),
            vhost: st.vhost.clone(),
            user: st.user.clone(),
            peer_host: peer_host.clone(),
            peer_port: conn.peer.port(),
            port,
            channels: st.channels.len() as u32,
            recv_oct: conn.recv_oct.get(),
            send_oct: conn.send_oct.get(),
            connected_at: conn
                .connected_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            frame_max: conn.frame_max.get(),
            channel_max: st.channel_max,
            client_properties: crate::mgmt::json::table_to_json(&conn.client_properties.borrow()),
            shard: shard.id().0,
            state: conn.api_state(now),
            auth_mechanism: st.auth_mechanism,
            tls: conn.transport.tls().cloned(),
        });
        for ch in st.channels.values() {
            if ch.closing {
                continue;
            }
            s.channels.push(ChanInfo {
                connection: name.clone(),
                number: ch.id,
                vhost: st.vhost.clone(),
                user: st.user.clone(),
                peer_host: peer_host.clone(),
                peer_port: conn.peer.port(),
                consumers: ch.consumers.len() as u32,
                unacked: ch.unacked.len() as u32,
                prefetch: ch.prefetch,
                global_prefetch: ch.global_prefetch,
                confirm: ch.confirm,
                tx: ch.tx.is_some(),
                publish: ch.stats.publish,
                deliver: ch.stats.deliver,
                ack: ch.stats.ack,
                confirmed: ch.stats.confirm,
                returned: ch.stats.returned,
            });
            for (x, i, o) in &ch.stats.exchanges {
                merge_exchange(&mut exchanges, &st.vhost, x.as_str(), *i, *o);
            }
            for (tag, c) in &ch.consumers {
                let (vhost, queue) = qname(c.queue);
                s.consumers.push(ConsumerInfo {
                    vhost,
                    user: st.user.clone(),
                    queue,
                    tag: tag.clone(),
                    connection: name.clone(),
                    channel: ch.id,
                    peer_host: peer_host.clone(),
                    peer_port: conn.peer.port(),
                    ack_required: !c.no_ack,
                    exclusive: c.exclusive,
                    prefetch: ch.prefetch,
                    id: c.id.0,
                    queue_id: c.queue.0,
                });
            }
        }
    }
    s.exchanges = exchanges;
    let closed = shard.conns.closed_channel_totals.get();
    s.publish_total = closed.publish + s.channels.iter().map(|c| c.publish).sum::<u64>();
    s.confirm_total = closed.confirm + s.channels.iter().map(|c| c.confirmed).sum::<u64>();
    s.counters = *shard.conns.counters.borrow();
    let table = shard.link.table();
    for q in shard.home.queues.borrow().values() {
        if q.is_delay_store() {
            let (v, x) = (q.def.vhost.clone(), q.def.name.clone());
            s.delayed.push((v, x, q.message_count()));
            continue;
        }
        let (policy, operator) = table.policies.for_object(&q.def.vhost, &q.def.name, true);
        s.queues.push(QueueInfo {
            policy: policy.map(|p| p.name.clone()),
            operator_policy: operator.map(|p| p.name.clone()),
            effective_policy_definition: serde_json::Value::Object(crate::defs::policy::merge(
                policy, operator,
            )),
            id: q.def.id.0,
            vhost: q.def.vhost.clone(),
            name: q.def.name.clone(),
            durable: q.def.durable,
            auto_delete: q.def.auto_delete,
            exclusive: q.def.exclusive_owner.is_some(),
            arguments: crate::mgmt::json::table_to_json(&q.def.args),
            ready: q.message_count(),
            unacked: q.unacked_count(),
            consumers: q.consumer_count(),
            stats: q.stats,
            shard: shard.id().0,
            single_active_consumer: q.single_active_consumer().map(|c| (c.id.0, c.tag.clone())),
        });
    }
    s.outbox_depth = (0..shard.link.shard_count())
        .map(|d| shard.link.outbox.len(crate::ids::ShardId(d)))
        .collect();
    s.runtime_ns = glommio::executor()
        .executor_stats()
        .total_runtime()
        .as_nanos() as u64;
    let st = shard.home.store.borrow();
    s.store_segments = st.segment_count();
    s.store_bytes = st.bytes();
    s
}
