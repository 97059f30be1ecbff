//! Several "hosts" on one machine, for tests of workers on different hosts sharing one
//! PostgreSQL: each host is a Linux network namespace of its own, with its own address, joined
//! to the test process's network namespace (the "root" here) by a veth pair on a bridge.
//!
//! ```text
//!   root namespace: bridge fcPIDbN, 10.A.B.1/24  <- a server listens here (bridge_ip)
//!     ├── veth fcPIDvK ── eth0 10.A.B.10 in namespace fc-PID-N-0  (host 0)
//!     └── veth fcPIDvK ── eth0 10.A.B.11 in namespace fc-PID-N-1  (host 1)
//! ```
//!
//! A server for the hosts listens on the bridge's address: PostgreSQL with
//! `Postgres::with_options(PostgresOptions::default().tcp(network.bridge_ip()))` (its pg_hba
//! trusts every TCP client). Programs run on a host with [`Host::command`] or [`Host::child`],
//! code of the test process with [`Host::enter`]. [`Host::cut`] partitions a host from
//! everything else until [`Host::restore`].
//!
//! Making namespaces needs root and iproute2's `ip` (CI runs as root). Where that cannot be
//! done, [`Network::new`] says why and returns `None`, and the test skips; unless
//! `FLOWCORE_NETNS_TEST=required`, which makes that a failure.
//!
//! Everything made is named after the test process's pid and removed on drop. What a process
//! killed before its drop left behind is removed by the next [`Network::new`] of any test
//! process: names carrying the pid of a process that is gone. That takes the test processes
//! that share the network stack to share a pid namespace too, as they do on a CI machine.

use std::ffi::OsStr;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where `ip netns add` keeps a namespace, as a file that [`Host::enter`] opens.
const NETNS_DIR: &str = "/var/run/netns";

/// `setns`'s `nstype` for a network namespace.
const CLONE_NEWNET: std::ffi::c_int = 0x4000_0000;

/// The most hosts a network has: their addresses, `.10` up, stay within the /24.
pub const MAX_HOSTS: usize = 200;

unsafe extern "C" {
    safe fn geteuid() -> u32;
    /// Moves the calling thread (only) into the namespace of `fd`. No memory is involved.
    safe fn setns(fd: std::ffi::c_int, nstype: std::ffi::c_int) -> std::ffi::c_int;
}

/// A bridge in the test process's network namespace and hosts attached to it. Dropping it
/// removes them all. Drop a server listening on [`Network::bridge_ip`] first (declare it
/// after the network): its address goes with the bridge.
pub struct Network {
    ip: &'static Path,
    bridge: String,
    bridge_ip: Ipv4Addr,
    hosts: Vec<Host>,
}

/// One host of a [`Network`]: a network namespace with `lo` and `eth0`, whose default route is
/// the bridge.
pub struct Host {
    ip: &'static Path,
    name: String,
    addr: Ipv4Addr,
    link: String,
}

impl Network {
    /// A fresh bridge with `hosts` hosts (at most [`MAX_HOSTS`]), on a /24 of 10.0.0.0/8 that no
    /// interface or route of this machine uses; each host's traffic to the bridge's address
    /// checked to arrive from its own address. `None`, having said why, where namespaces
    /// cannot be made (or that traffic does not arrive).
    pub fn new(hosts: usize) -> Option<Network> {
        assert!(hosts <= MAX_HOSTS, "at most {MAX_HOSTS} hosts, not {hosts}");
        match Network::try_new(hosts) {
            Ok(network) => Some(network),
            Err(reason) => {
                unavailable(&reason);
                None
            }
        }
    }

    fn try_new(hosts: usize) -> Result<Network, String> {
        if geteuid() != 0 {
            return Err("not running as root".to_owned());
        }
        let ip = ip_program()?;
        sweep(ip);

        static NETWORKS: AtomicU32 = AtomicU32::new(0);
        static LINKS: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let n = NETWORKS.fetch_add(1, Ordering::Relaxed);
        // Against other test processes choosing the same /24 before this one's bridge has it.
        let lock = lock()?;
        let [_, a, b, _] = free_subnet(ip, pid, n)?.octets();
        let network = Network {
            ip,
            // Interface names have at most 15 bytes: 2 + 7 (pid_max is 2^22) + 1 + 5.
            bridge: format!("fc{pid}b{n}"),
            bridge_ip: Ipv4Addr::new(10, a, b, 1),
            hosts: (0..hosts)
                .map(|i| Host {
                    ip,
                    name: format!("fc-{pid}-{n}-{i}"),
                    addr: Ipv4Addr::new(10, a, b, 10 + i as u8),
                    link: format!("fc{pid}v{}", LINKS.fetch_add(1, Ordering::Relaxed)),
                })
                .collect(),
        };
        // From here on, an early return drops `network`, which removes what was made.

        // Fixed MAC addresses, and neighbour (ARP) entries for them on both sides: nothing
        // resolves addresses, so that a cut drops packets and nothing else, and a restore
        // works at once. With ARP, a connection attempt made just after a restore could still
        // fail with "No route to host", when the resolution begun during the cut gave up.
        let mac = |last: u8| format!("02:00:0a:{a:02x}:{b:02x}:{last:02x}");
        let mut root = format!(
            "link add {br} address {mac} type bridge\n\
             addr add {bridge_ip}/24 dev {br}\n\
             link set {br} up\n",
            br = network.bridge,
            mac = mac(1),
            bridge_ip = network.bridge_ip,
        );
        for host in &network.hosts {
            let host_mac = mac(host.addr.octets()[3]);
            root += &format!(
                "netns add {ns}\n\
                 link add {link} type veth peer name eth0 address {host_mac} netns {ns}\n\
                 link set {link} master {br}\n\
                 link set {link} up\n\
                 neigh replace {addr} lladdr {host_mac} dev {br} nud permanent\n",
                ns = host.name,
                link = host.link,
                br = network.bridge,
                addr = host.addr,
            );
        }
        batch(ip, None, &root)?;
        drop(lock);
        for host in &network.hosts {
            let inside = format!(
                "link set lo up\n\
                 addr add {}/24 dev eth0\n\
                 link set eth0 up\n\
                 route add default via {bridge_ip}\n\
                 neigh replace {bridge_ip} lladdr {mac} dev eth0 nud permanent\n",
                host.addr,
                bridge_ip = network.bridge_ip,
                mac = mac(1),
            );
            batch(ip, Some(&host.name), &inside)?;
        }
        network.check()?;
        Ok(network)
    }

    /// Connects from each host to a listener on the bridge's address, and sees the
    /// connection come from the host's address. Neither iptables rules nor rp_filter should
    /// be in the way (the traffic is local to the bridge's subnet, and each side's route back
    /// is the interface the packets came in on), but a firewall's INPUT rules would be, and
    /// nothing else says so as clearly.
    fn check(&self) -> Result<(), String> {
        let listener = TcpListener::bind((self.bridge_ip, 0))
            .map_err(|e| format!("listen on the bridge's address {}: {e}", self.bridge_ip))?;
        let to = listener.local_addr().unwrap();
        for host in &self.hosts {
            let start = Instant::now();
            let stream = loop {
                let tried = host.try_enter(|| TcpStream::connect_timeout(&to, TIMEOUT))?;
                match tried {
                    Ok(stream) => break stream,
                    // A port of the bridge may take a moment to forward.
                    Err(_) if start.elapsed() < TIMEOUT * 5 => {
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    Err(e) => {
                        let nf =
                            std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                                .map_or("unset".to_owned(), |v| v.trim().to_owned());
                        return Err(format!(
                            "host {} ({}) cannot connect to {to} on the bridge: {e}; a \
                             firewall's INPUT rules may drop it \
                             (net.bridge.bridge-nf-call-iptables = {nf})",
                            host.name, host.addr
                        ));
                    }
                }
            };
            let (_accepted, from) = listener
                .accept()
                .map_err(|e| format!("accept on {to}: {e}"))?;
            drop(stream);
            if from.ip() != host.addr {
                return Err(format!(
                    "a connection from host {} ({}) arrived from {from}",
                    host.name, host.addr
                ));
            }
        }
        Ok(())
    }

    /// The bridge's address, in the test process's namespace: where servers for the hosts
    /// listen, and the hosts' default route.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.bridge_ip
    }

    /// The bridge's interface name, `fcPIDbN`.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Host `i` (from 0).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a veth's end deletes both: then none is left, even in a namespace that a
        // process still running in it keeps alive after `netns del` (it has only `lo` then).
        let mut script = String::new();
        for host in &self.hosts {
            script += &format!("link del {}\n", host.link);
        }
        script += &format!("link del {}\n", self.bridge);
        for host in &self.hosts {
            script += &format!("netns del {}\n", host.name);
        }
        let _ = batch_forced(self.ip, &script);
    }
}

/// How long [`Network::new`]'s check waits for one connection.
const TIMEOUT: Duration = Duration::from_secs(2);

impl Host {
    /// The namespace's name, `fc-PID-N-I`, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address, `10.A.B.(10 + I)`: what servers see its connections come from.
    pub fn ip(&self) -> Ipv4Addr {
        self.addr
    }

    /// The interface name of its veth's end on the bridge, `fcPIDvK`: what [`Host::cut`] sets
    /// down.
    pub fn link(&self) -> &str {
        &self.link
    }

    /// `ip netns exec NAME program`: runs `program` (with the arguments the caller adds) on this
    /// host, with this process's environment (and what the caller sets).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(self.ip);
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// [`super::child`] on this host: the ignored test `name` of this test binary, run in a
    /// new process in the namespace, with `envs` set; its stdout and stderr piped.
    pub fn child<K, V>(&self, name: &str, envs: impl IntoIterator<Item = (K, V)>) -> Command
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let outside = super::child(name, envs);
        let mut cmd = self.command(outside.get_program());
        cmd.args(outside.get_args());
        for (key, value) in outside.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `f` on a new thread of this process moved into the namespace, and returns what it
    /// returns (a panic in `f` is resumed here). The sockets that `f` opens stay in the
    /// namespace for their whole life, whichever thread uses them later; processes it spawns
    /// start in it.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.try_enter(f).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        let path = Path::new(NETNS_DIR).join(&self.name);
        let ns = std::fs::File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
        let joined = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    if setns(ns.as_raw_fd(), CLONE_NEWNET) != 0 {
                        let e = std::io::Error::last_os_error();
                        return Err(format!("enter the network namespace {}: {e}", self.name));
                    }
                    Ok(f())
                })
                .join()
        });
        joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Partitions the host from the bridge, both ways, until [`Host::restore`]: its veth's end
    /// on the bridge goes down, and every packet between the host and the rest is dropped.
    /// Nothing is refused or reset, and no error comes back: inside, `eth0` only loses its
    /// carrier, keeping its address and routes (and the fixed ARP entries leave nothing to fail
    /// resolving). So, for a process on the host, and alike for its peer outside:
    ///
    /// - a new connection gets no answer: it fails at its connect timeout, or when TCP gives up
    ///   retrying the SYN (~2 minutes by default);
    /// - an open TCP connection is not told: reads wait, writes are buffered and retransmitted
    ///   unanswered, until the restore (the connection then goes on, at its next retransmission,
    ///   which backs off to once in 2 minutes), or until a timeout ends it: the application's,
    ///   TCP keepalive, `TCP_USER_TIMEOUT`, or TCP giving up retransmitting (~15 minutes by
    ///   default).
    ///
    /// Not the end inside the namespace: setting that down deletes its routes, and setting it up
    /// again would not bring the default route back.
    pub fn cut(&self) {
        self.set_link("down");
    }

    /// Ends a [`Host::cut`]: new connections work at once, open ones go on at their next
    /// retransmission.
    pub fn restore(&self) {
        self.set_link("up");
    }

    fn set_link(&self, state: &str) {
        let out = Command::new(self.ip)
            .args(["link", "set", &self.link, state])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip link set {} {state} (host {}): {}",
            self.link,
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

/// iproute2's `ip`, on PATH or where Debian keeps it; or why there is none.
fn ip_program() -> Result<&'static Path, String> {
    static IP: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    IP.get_or_init(|| {
        let on_path = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join("ip"));
        on_path
            .chain(["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].map(PathBuf::from))
            .find(|p| p.is_file())
            .ok_or_else(|| "no `ip` (iproute2) on PATH nor in /usr/sbin, /sbin".to_owned())
    })
    .as_ref()
    .map(PathBuf::as_path)
    .map_err(Clone::clone)
}

/// Runs `script`, `ip` commands one a line, with `ip -batch` (in the namespace `netns`, if
/// given): stops at the first that fails, which the error names.
fn batch(ip: &Path, netns: Option<&str>, script: &str) -> Result<(), String> {
    let mut cmd = Command::new(ip);
    if let Some(netns) = netns {
        cmd.args(["-n", netns]);
    }
    run_script(cmd.args(["-batch", "-"]), script).and_then(|out| {
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`ip{} -batch` failed ({}): {}; its commands:\n{script}",
                netns.map(|n| format!(" -n {n}")).unwrap_or_default(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    })
}

/// As [`batch`], going on past failures (what is to be removed may be gone already).
fn batch_forced(ip: &Path, script: &str) -> Result<std::process::Output, String> {
    run_script(Command::new(ip).args(["-force", "-batch", "-"]), script)
}

fn run_script(cmd: &mut Command, script: &str) -> Result<std::process::Output, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))?;
    let written = child.stdin.take().unwrap().write_all(script.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for ip: {e}"))?;
    written.map_err(|e| format!("write to ip -batch: {e}"))?;
    Ok(out)
}

/// An exclusive lock, shared by all test processes, released when the file is dropped.
fn lock() -> Result<std::fs::File, String> {
    let dir = Path::new("/run");
    let dir = if dir.is_dir() {
        dir.to_owned()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join("flowcore-netns.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("lock {}: {e}", path.display()))?;
    Ok(file)
}

/// A /24 of 10.0.0.0/8, `10.A.B.0`, that overlaps no address's subnet on this machine (other
/// tests' bridges included) nor any route of the main table more specific than a /8 (a
/// network the machine reaches, which the bridge would hide). Where the search starts depends
/// on the pid and `n`, so that concurrent test processes seldom try the same ones.
fn free_subnet(ip: &Path, pid: u32, n: u32) -> Result<Ipv4Addr, String> {
    let list = |args: &[&str]| -> Result<String, String> {
        let out = Command::new(ip)
            .args(args)
            .output()
            .map_err(|e| format!("run ip {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "ip {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut used: Vec<(u32, u32)> = Vec::new();
    // `4: eth0    inet 192.0.2.2/24 brd …`
    for line in list(&["-4", "-o", "addr", "show"])?.lines() {
        let mut words = line.split_whitespace();
        if words.any(|w| w == "inet")
            && let Some(prefix) = words.next().and_then(parse_prefix)
        {
            used.push(prefix);
        }
    }
    // `192.0.2.0/24 dev eth0 …`, `default via …`, `203.0.113.5 via …`
    for line in list(&["-4", "route", "show", "table", "main"])?.lines() {
        if let Some(prefix) = line.split_whitespace().next().and_then(parse_prefix)
            && prefix.1 > 8
        {
            used.push(prefix);
        }
    }
    let start = pid.wrapping_mul(97).wrapping_add(n.wrapping_mul(13));
    (0..1 << 16)
        .map(|k| (start.wrapping_add(k) & 0xffff) << 8 | 10 << 24)
        .find(|&net| !used.iter().any(|&other| overlaps((net, 24), other)))
        .map(Ipv4Addr::from)
        .ok_or_else(|| "every /24 of 10.0.0.0/8 is in use on this machine".to_owned())
}

/// `a.b.c.d/len` or `a.b.c.d` (a /32) as an address and prefix length.
fn parse_prefix(text: &str) -> Option<(u32, u32)> {
    let (addr, len) = text.split_once('/').unwrap_or((text, "32"));
    let len: u32 = len.parse().ok().filter(|&l| l <= 32)?;
    Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), len))
}

fn overlaps((a, a_len): (u32, u32), (b, b_len): (u32, u32)) -> bool {
    let mask = u32::MAX.checked_shl(32 - a_len.min(b_len)).unwrap_or(0);
    a & mask == b & mask
}

/// Removes the namespaces and interfaces of test processes that are gone: `fc-PID-…`,
/// `fcPIDbN` and `fcPIDvK`.
fn sweep(ip: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let gone = |pid: &str| {
        pid.parse::<u32>()
            .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    let output = |args: &[&str]| {
        Command::new(ip)
            .args(args)
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    };
    let mut script = String::new();
    // `5: fc123b0: <…`, `6: fc123v0@if2: <…`
    for line in output(&["-o", "link", "show"]).lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        let Some(rest) = name.strip_prefix("fc") else {
            continue;
        };
        let Some((pid, n)) = rest.split_once(['b', 'v']) else {
            continue;
        };
        if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) && gone(pid) {
            script += &format!("link del {name}\n");
        }
    }
    // `fc-123-0-1 (id: 3)`
    for line in output(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if let Some(rest) = name.strip_prefix("fc-")
            && gone(rest.split('-').next().unwrap_or_default())
        {
            script += &format!("netns del {name}\n");
        }
    }
    if !script.is_empty() {
        let _ = batch_forced(ip, &script);
    }
}

/// Says why a test has no network namespaces, or fails it if `FLOWCORE_NETNS_TEST=required`.
fn unavailable(reason: &str) {
    assert!(
        std::env::var("FLOWCORE_NETNS_TEST").as_deref() != Ok("required"),
        "FLOWCORE_NETNS_TEST=required but network namespaces cannot be made: {reason}"
    );
    eprintln!(
        "skipped: cannot make network namespaces ({reason}); run as root, with iproute2's `ip`, \
         to run this test"
    );
}
