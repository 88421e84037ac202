use super::*;

fn event(time_ns: u64, action: Action, id: &str) -> Event {
    Event {
        time_ns,
        subject: Subject::Container,
        action,
        id: id.into(),
        attributes: BTreeMap::new(),
    }
}

#[test]
fn appended_events_read_back_in_time_order_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::at(&dir.path().join("events"));
    log.append(&event(30, Action::Die, "c1").with("exit_code", 3));
    log.append(&event(10, Action::Create, "c1"));
    log.append(&event(20, Action::Start, "c1"));
    let all = log.read(None, None).unwrap();
    let actions: Vec<_> = all.iter().map(|e| e.action).collect();
    assert_eq!(actions, [Action::Create, Action::Start, Action::Die]);
    assert_eq!(all[2].attributes["exit_code"], "3");
    let window = log.read(Some(20), Some(20)).unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].action, Action::Start);
}

#[test]
fn the_log_is_private_and_missing_means_empty() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::at(&dir.path().join("events"));
    assert!(log.read(None, None).unwrap().is_empty());
    log.append(&event(1, Action::Create, "x"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("events")), 0o700);
    assert_eq!(mode(&dir.path().join("events/events.log")), 0o600);
}

#[test]
fn rotation_keeps_the_previous_file_and_readers_see_both() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::at(&dir.path().join("events"));
    let big = "x".repeat(64 << 10);
    let mut written = 0u64;
    let mut n = 0u64;
    while written <= 2 * MAX_LOG_BYTES + (1 << 20) {
        let e = event(n, Action::Start, "c").with("pad", &big);
        written += serde_json::to_vec(&e).unwrap().len() as u64 + 1;
        log.append(&e);
        n += 1;
    }
    assert!(dir.path().join("events/events.log.1").exists());
    let size = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().len();
    assert!(size("events/events.log") <= MAX_LOG_BYTES + (70 << 10));
    assert!(size("events/events.log.1") <= MAX_LOG_BYTES + (70 << 10));
    let events = log.read(None, None).unwrap();
    // The newest events are all there, contiguous, up to the last one written.
    assert_eq!(events.last().unwrap().time_ns, n - 1);
    assert!(events.len() as u64 > MAX_LOG_BYTES / (64 << 10));
    for pair in events.windows(2) {
        assert_eq!(pair[1].time_ns, pair[0].time_ns + 1);
    }
}

#[test]
fn a_half_written_or_foreign_line_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events");
    let log = EventLog::at(&path);
    log.append(&event(1, Action::Create, "a"));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path.join("events.log"))
        .unwrap();
    file.write_all(b"not json\n{\"time_ns\":2,\"subj").unwrap();
    let events = log.read(None, None).unwrap();
    assert_eq!(events.len(), 1);
    // The rest of the half line arrives: it is read as one event.
    file.write_all(b"ect\":\"image\",\"action\":\"pull\",\"id\":\"busybox\"}\n")
        .unwrap();
    let events = log.read(None, None).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[1].subject, events[1].action),
        (Subject::Image, Action::Pull)
    );
}

#[test]
fn filters_follow_dockers_rules() {
    let web = event(1, Action::Die, "web-0123456789")
        .with("name", "web")
        .with("image", "nginx:1")
        .with("tier", "front");
    let mut f = EventFilter::default();
    assert!(f.matches(&web));
    f.add("type", "container").unwrap();
    f.add("event", "die").unwrap();
    f.add("event", "start").unwrap();
    assert!(f.matches(&web));
    f.add("container", "web").unwrap();
    assert!(f.matches(&web));
    f.add("label", "tier=front").unwrap();
    f.add("label", "tier").unwrap();
    assert!(f.matches(&web));
    f.add("label", "tier=back").unwrap();
    assert!(!f.matches(&web), "every label must match");

    let mut by_prefix = EventFilter::default();
    by_prefix.add("container", "web-0123").unwrap();
    assert!(by_prefix.matches(&web));
    let mut other = EventFilter::default();
    other.add("container", "db").unwrap();
    assert!(!other.matches(&web));
    let mut image = EventFilter::default();
    image.add("image", "nginx:1").unwrap();
    assert!(image.matches(&web));
    let mut health = EventFilter::default();
    health.add("event", "health_status: healthy").unwrap();
    assert_eq!(health.actions, [Action::HealthStatus]);

    assert!(EventFilter::default().add("type", "pod").is_err());
    assert!(EventFilter::default().add("event", "explode").is_err());
    assert!(EventFilter::default().add("colour", "red").is_err());
}

#[test]
fn every_action_has_its_serialized_name() {
    for action in Action::ALL {
        let json = serde_json::to_string(&action).unwrap();
        assert_eq!(json, format!("\"{}\"", action.as_str()));
    }
}

#[test]
fn the_line_for_people_names_everything() {
    let e = event(1_700_000_000_123_456_789, Action::Die, "web-1")
        .with("exit_code", 0)
        .with("name", "web");
    assert_eq!(
        e.to_line(),
        "2023-11-14T22:13:20.123456789Z container die web-1 (exit_code=0, name=web)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gets_the_past_then_what_is_appended_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::at(&dir.path().join("events"));
    log.append(&event(5, Action::Create, "old"));
    log.append(&event(10, Action::Create, "a"));
    let mut rx = log.follow(Some(10));
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, "a");
    log.append(&event(11, Action::Start, "a"));
    let next = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((next.id.as_str(), next.action), ("a", Action::Start));
    // Rotated under the follower: the next event is in a new file.
    std::fs::rename(
        dir.path().join("events/events.log"),
        dir.path().join("events/events.log.1"),
    )
    .unwrap();
    log.append(&event(12, Action::Die, "a"));
    let after = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.action, Action::Die);
    drop(rx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_without_since_sees_only_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::at(&dir.path().join("events"));
    log.append(&event(1, Action::Create, "before"));
    let mut rx = log.follow(None);
    log.append(&event(2, Action::Create, "after"));
    let got = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, "after");
}

#[test]
fn times_are_read_as_docker_reads_them() {
    let now = 2_000_000_000_000_000_000;
    assert_eq!(parse_time("1700000000", now), Ok(1_700_000_000_000_000_000));
    assert_eq!(
        parse_time("1700000000.5", now),
        Ok(1_700_000_000_500_000_000)
    );
    assert_eq!(
        parse_time("1700000000.000000001", now),
        Ok(1_700_000_000_000_000_001)
    );
    assert_eq!(
        parse_time("2023-11-14T22:13:20Z", now),
        Ok(1_700_000_000_000_000_000)
    );
    assert_eq!(parse_time("10m", now), Ok(now - 600_000_000_000));
    assert_eq!(parse_time("1h 30m", now), Ok(now - 5_400_000_000_000));
    assert!(
        parse_time("yesterday", now)
            .unwrap_err()
            .contains("RFC 3339")
    );
    assert!(parse_time("1.2.3", now).is_err());
    assert!(parse_time("99999999999999999999", now).is_err());
}
