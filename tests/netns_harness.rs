//! The network namespaces that tests of workers on several hosts run them in
//! (tests/support/netns.rs): each host reaches the bridge from its own address, PostgreSQL
//! listening on the bridge serves the hosts, a cut partitions a host until it is restored, and
//! nothing is left behind.
//!
//! Where namespaces cannot be made (not root) these tests say they skipped, unless
//! `FLOWCORE_NETNS_TEST=required`. Children are this test binary again, run with
//! `--exact <child>` inside a namespace; see tests/support.

mod support;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::netns::Network;
use support::{Postgres, PostgresOptions, marker, run, run_ok, show};

/// A connect timeout short enough for a test to wait out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The `ip` lines naming what a network made: namespaces and links.
fn ip_lists() -> String {
    let list = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    list(&["netns", "list"]) + &list(&["-o", "link", "show"])
}

fn mentions(lists: &str, name: &str) -> bool {
    lists
        .split(|c: char| c.is_whitespace() || c == ':' || c == '@')
        .any(|word| word == name)
}

#[test]
fn each_host_reaches_the_bridge_from_its_own_address() {
    let Some(net) = Network::new(2) else { return };
    let listener = TcpListener::bind((net.bridge_ip(), 0)).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut said = BTreeSet::new();
    for host in net.hosts() {
        let out = run_ok(&mut host.child("child_connect", [("FLOWCORE_NETNS_CONNECT", &addr)]));
        said.insert(marker(&out, "LOCAL_ADDR"));
    }
    let mut seen = BTreeSet::new();
    for _ in net.hosts() {
        let (mut stream, from) = listener.accept().unwrap();
        let mut sent = String::new();
        stream.read_to_string(&mut sent).unwrap();
        // What the child says it is, from the address it connected from.
        assert_eq!(sent, from.ip().to_string());
        seen.insert(sent);
    }
    let hosts: BTreeSet<String> = net.hosts().iter().map(|h| h.ip().to_string()).collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert_eq!(seen, hosts);
    assert_eq!(said, hosts);
    assert_eq!(
        net.host(0).ip().octets()[..3],
        net.bridge_ip().octets()[..3]
    );
}

/// Run inside a host by the test above: connects to `FLOWCORE_NETNS_CONNECT`, says its local
/// address, and sends it.
#[test]
#[ignore = "run as a child process by each_host_reaches_the_bridge_from_its_own_address"]
fn child_connect() {
    let Ok(addr) = std::env::var("FLOWCORE_NETNS_CONNECT") else {
        return;
    };
    let addr: SocketAddr = addr.parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let local = stream.local_addr().unwrap().ip().to_string();
    println!("LOCAL_ADDR {local}");
    stream.write_all(local.as_bytes()).unwrap();
}

#[test]
fn host_command_runs_in_the_namespace_with_the_environment() {
    let Some(net) = Network::new(1) else { return };
    let host = net.host(0);
    let out = host
        .command("sh")
        .args([
            "-c",
            "echo \"$FLOWCORE_NETNS_PROBE\"; ip -4 -o addr show dev eth0",
        ])
        .env("FLOWCORE_NETNS_PROBE", "kept")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("kept"));
    assert!(
        lines
            .next()
            .unwrap()
            .contains(&format!("inet {}/24", host.ip())),
        "{stdout}"
    );
}

#[test]
fn a_cut_host_cannot_connect_until_restored_and_the_others_still_can() {
    let Some(net) = Network::new(2) else { return };
    let listener = TcpListener::bind((net.bridge_ip(), 0)).unwrap();
    let to = listener.local_addr().unwrap();
    let connect = |i: usize| {
        net.host(i)
            .enter(|| TcpStream::connect_timeout(&to, CONNECT_TIMEOUT))
    };
    connect(0).expect("host 0 connects before the cut");

    net.host(0).cut();
    let start = Instant::now();
    let refused = connect(0).expect_err("host 0 connected while cut");
    // No answer at all, not an error: the connect timeout ends it.
    assert_eq!(refused.kind(), ErrorKind::TimedOut, "{refused:?}");
    assert!(start.elapsed() >= CONNECT_TIMEOUT, "{:?}", start.elapsed());
    connect(1).expect("host 1 connects while host 0 is cut");

    net.host(0).restore();
    connect(0).expect("host 0 connects at once after the restore");
}

#[test]
fn a_connection_open_across_a_cut_stalls_and_goes_on_after_the_restore() {
    let Some(net) = Network::new(1) else { return };
    let host = net.host(0);
    let listener = TcpListener::bind((net.bridge_ip(), 0)).unwrap();
    let to = listener.local_addr().unwrap();
    let mut client = host.enter(|| TcpStream::connect(to)).unwrap();
    let (mut server, _) = listener.accept().unwrap();

    host.cut();
    client.write_all(b"ping").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0; 4];
    let stalled = server.read(&mut buf).expect_err("data crossed the cut");
    assert!(
        matches!(stalled.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{stalled:?}"
    );

    host.restore();
    // At the client's next retransmission, a few seconds after a short cut.
    server
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

#[test]
fn postgres_on_the_bridge_serves_each_host_but_not_one_cut() {
    let Some(net) = Network::new(2) else { return };
    let Some(pg) = Postgres::with_options(PostgresOptions::default().tcp(net.bridge_ip())) else {
        return;
    };
    let db = pg.database("netns");
    let url = db.tcp_url().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("postgres://postgres@{}:", net.bridge_ip())),
        "{url}"
    );
    let query = |i: usize| {
        run(&mut net
            .host(i)
            .child("child_pg_client_addr", [("FLOWCORE_NETNS_PG_URL", &url)]))
    };
    for (i, host) in net.hosts().iter().enumerate() {
        let out = query(i);
        assert!(out.status.success(), "host {i}: {}", show(&out));
        assert_eq!(marker(&out, "CLIENT_ADDR"), host.ip().to_string());
        assert_eq!(marker(&out, "SERVER_ADDR"), net.bridge_ip().to_string());
    }

    net.host(1).cut();
    let start = Instant::now();
    let out = query(1);
    assert!(!out.status.success(), "connected while cut: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("connect to {url}")),
        "{}",
        show(&out)
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(query(0).status.success(), "host 0 while host 1 is cut");

    net.host(1).restore();
    let out = query(1);
    assert!(out.status.success(), "after the restore: {}", show(&out));
    drop(pg);
}

/// Run inside a host by the test above: connects to `FLOWCORE_NETNS_PG_URL` and says the
/// addresses the server sees.
#[test]
#[ignore = "run as a child process by postgres_on_the_bridge_serves_each_host_but_not_one_cut"]
fn child_pg_client_addr() {
    let Ok(url) = std::env::var("FLOWCORE_NETNS_PG_URL") else {
        return;
    };
    let mut config: postgres::Config = url.parse().unwrap();
    let mut client = config
        .connect_timeout(CONNECT_TIMEOUT)
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to {url}: {e} ({e:?})"));
    let row = client
        .query_one(
            "SELECT host(inet_client_addr()), host(inet_server_addr())",
            &[],
        )
        .unwrap();
    println!("CLIENT_ADDR {}", row.get::<_, String>(0));
    println!("SERVER_ADDR {}", row.get::<_, String>(1));
}

#[test]
fn dropping_the_network_removes_its_namespaces_and_links() {
    let Some(net) = Network::new(2) else { return };
    let mut names = vec![net.bridge().to_owned()];
    for host in net.hosts() {
        names.push(host.name().to_owned());
        names.push(host.link().to_owned());
    }
    let before = ip_lists();
    for name in &names {
        assert!(mentions(&before, name), "no {name} in:\n{before}");
    }
    drop(net);
    let after = ip_lists();
    for name in &names {
        assert!(!mentions(&after, name), "{name} is left in:\n{after}");
    }
}

#[test]
fn leftovers_of_a_dead_test_process_are_removed() {
    let Some(net) = Network::new(1) else { return };
    drop(net);
    // A pid no process has now.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let ns = format!("fc-{pid}-0-0");
    let bridge = format!("fc{pid}b0");
    let veth = format!("fc{pid}v0");
    let peer = format!("fc{pid}p0");
    // Each made on its own: a sweep (any test's network, in this process or another) may
    // remove some before the others are made, and nothing here checks that they are there.
    for args in [
        vec!["netns", "add", &ns],
        vec!["link", "add", &bridge, "type", "bridge"],
        vec!["link", "add", &veth, "type", "veth", "peer", "name", &peer],
    ] {
        let out = Command::new("ip").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            show(&out)
        );
    }

    let net = Network::new(1).expect("a network, as before");
    let after = ip_lists();
    for name in [&ns, &bridge, &veth, &peer] {
        assert!(!mentions(&after, name), "{name} is left in:\n{after}");
    }
    drop(net);
}

#[test]
fn concurrent_networks_get_distinct_subnets() {
    let Some(a) = Network::new(1) else { return };
    let b = Network::new(1).expect("a second network");
    let subnet = |ip: Ipv4Addr| ip.octets()[..3].to_vec();
    assert_ne!(subnet(a.bridge_ip()), subnet(b.bridge_ip()));
    assert_ne!(a.bridge(), b.bridge());
    assert_ne!(a.host(0).name(), b.host(0).name());
}
