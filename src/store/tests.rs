//! Unit tests of the durable store (segments, journal, recovery).
use super::*;

fn msg(body: &'static [u8]) -> Message {
    Message {
        exchange: "x".into(),
        routing_key: "k".into(),
        props: Bytes::from_static(&[0x10, 0, 2]),
        body: Bytes::from_static(body),
        persistent: true,
        expiration_ms: None,
        priority: 0,
    }
}

#[test]
fn segments_roll_over_and_are_deleted_once_all_acked() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().to_path_buf(), 256, false).unwrap();
    s.open_queue(QueueId(1), "/", "q");
    let mut positions = Vec::new();
    for _ in 0..10 {
        let p = s.append_message(&msg(&[7u8; 100])).unwrap();
        s.enqueue(QueueId(1), p, 0);
        positions.push(p);
    }
    let segs: HashSet<SegmentId> = positions.iter().map(|p| p.seg).collect();
    assert!(segs.len() >= 5, "rolled over: {segs:?}");
    let before = s.segment_count();
    let first = positions[0].seg;
    for p in positions.iter().filter(|p| p.seg == first) {
        s.ack(QueueId(1), *p);
    }
    assert_eq!(s.segment_count(), before, "kept until the acks are synced");
    let b = s.prepare_sync();
    assert!(b.wrote);
    s.finish_sync();
    assert_eq!(s.segment_count(), before - 1);
    assert!(!segment::segment_path(dir.path(), first).exists());
    let loaded = s.load(positions[9]).unwrap();
    assert_eq!(&loaded.body[..], &[7u8; 100][..]);
    assert_eq!(loaded.routing_key.as_str(), "k");
}

fn sync(s: &mut Store) {
    let b = s.prepare_sync();
    assert!(b.wrote);
    for f in b.files {
        f.sync().unwrap();
    }
    s.finish_sync();
}

#[test]
fn recovery_returns_unacked_messages_and_drops_unreferenced_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b);
    {
        let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
        s.open_queue(QueueId(1), "/", "q");
        a = s.append_message(&msg(b"one")).unwrap();
        s.enqueue(QueueId(1), a, 0);
        b = s.append_message(&msg(b"two")).unwrap();
        s.enqueue(QueueId(1), b, 0);
        s.delivered(QueueId(1), b, 3);
        s.ack(QueueId(1), a);
        sync(&mut s);
    }
    let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
    let live = s.open_queue(QueueId(1), "/", "q");
    s.finish_recovery([(QueueId(1), &live[..])]).unwrap();
    assert_eq!(
        live,
        vec![Recovered {
            pos: b,
            deliveries: 3,
            expires: 0
        }],
        "the delivery count survives"
    );
    assert_eq!(&s.load(b).unwrap().body[..], b"two");
}

#[test]
fn a_redeclared_queue_keeps_its_own_messages_and_not_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let new;
    {
        let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
        // Old incarnation of "q": one message, then deleted.
        s.open_queue(QueueId(1), "/", "q");
        let old = s.append_message(&msg(b"old")).unwrap();
        s.enqueue(QueueId(1), old, 0);
        s.drop_queue(QueueId(1), [old]);
        // New incarnation of the same name.
        s.open_queue(QueueId(2), "/", "q");
        new = s.append_message(&msg(b"new")).unwrap();
        s.enqueue(QueueId(2), new, 0);
        sync(&mut s);
    }
    let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
    assert!(s.open_queue(QueueId(1), "/", "q").is_empty());
    let live = s.open_queue(QueueId(2), "/", "q");
    assert_eq!(
        live,
        vec![Recovered {
            pos: new,
            deliveries: 0,
            expires: 0
        }]
    );
    s.finish_recovery([(QueueId(2), &live[..])]).unwrap();
    assert_eq!(&s.load(new).unwrap().body[..], b"new");
}

#[test]
fn segment_numbers_are_never_reused_after_every_segment_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let first;
    {
        let mut s = Store::open(dir.path().to_path_buf(), 256, true).unwrap();
        s.open_queue(QueueId(1), "/", "q");
        first = s.append_message(&msg(&[1u8; 100])).unwrap();
        s.enqueue(QueueId(1), first, 0);
        let second = s.append_message(&msg(&[2u8; 200])).unwrap();
        s.enqueue(QueueId(1), second, 0);
        s.ack(QueueId(1), first);
        s.ack(QueueId(1), second);
        sync(&mut s);
    }
    let mut s = Store::open(dir.path().to_path_buf(), 256, true).unwrap();
    s.open_queue(QueueId(1), "/", "q");
    s.finish_recovery([(QueueId(1), &[][..])]).unwrap();
    assert_eq!(s.segment_count(), 0, "every segment was released");
    s.open_queue(QueueId(3), "/", "other");
    let p = s.append_message(&msg(b"x")).unwrap();
    assert!(
        p.seg > first.seg,
        "{:?} reuses a number at or below {:?}",
        p.seg,
        first.seg
    );
}

#[test]
fn a_failed_journal_write_keeps_its_entries_for_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
    s.open_queue(QueueId(1), "/", "q");
    let a = s.append_message(&msg(b"a")).unwrap();
    s.enqueue(QueueId(1), a, 0);
    sync(&mut s);
    s.ack(QueueId(1), a);
    // Make the write fail: give the journal a read-only descriptor.
    let path = dir.path().join(journal::FILE_NAME);
    let len = std::fs::metadata(&path).unwrap().len();
    s.journal
        .install(std::fs::File::open(&path).unwrap(), len, 0, 0);
    assert!(!s.prepare_sync().wrote, "a failed write is reported");
    assert!(s.journal.has_pending(), "and its entries are kept");
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    s.journal.install(rw, len, 0, 0);
    sync(&mut s);
    drop(s);
    let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
    assert!(
        s.open_queue(QueueId(1), "/", "q").is_empty(),
        "the retried ack is on disk"
    );
}
