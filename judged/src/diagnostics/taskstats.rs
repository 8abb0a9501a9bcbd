//! Delay accounting of a run's tasks: the kernel's taskstats exit records (generic netlink
//! family `TASKSTATS`), summed over the run's tasks.
//!
//! Why exit records: a run's tasks are gone by the time its report is read, and
//! `/proc/PID/stat`'s delay field (42, block IO only) can be read only while a task lives, so
//! polling it would miss every short-lived task and the end of every long one. A listener
//! registered for all CPUs (`TASKSTATS_CMD_ATTR_REGISTER_CPUMASK`) is sent each task's final
//! totals as it exits: block IO, swap-in, direct reclaim (`freepages`) and thrashing delays.
//! Which records are the run's is told by the D-state tracer (eBPF), which records the ids of
//! the tasks that exit inside the run's cgroup; without it no record is attributed. The
//! delays are zero while `kernel.task_delayacct` is 0 (the kernel then does not count them).
//!
//! The message parsing is pure ([`parse_messages`]); [`ExitListener`] is the socket.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use serde::Serialize;

/// Totals of the delays of a set of tasks. Nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Delays {
    /// Tasks whose exit records were summed.
    pub tasks: u64,
    pub blkio_count: u64,
    pub blkio_delay_ns: u64,
    pub swapin_count: u64,
    pub swapin_delay_ns: u64,
    pub freepages_count: u64,
    pub freepages_delay_ns: u64,
    pub thrashing_count: u64,
    pub thrashing_delay_ns: u64,
}

impl Delays {
    fn add(&mut self, other: &Delays) {
        self.tasks += other.tasks;
        self.blkio_count += other.blkio_count;
        self.blkio_delay_ns += other.blkio_delay_ns;
        self.swapin_count += other.swapin_count;
        self.swapin_delay_ns += other.swapin_delay_ns;
        self.freepages_count += other.freepages_count;
        self.freepages_delay_ns += other.freepages_delay_ns;
        self.thrashing_count += other.thrashing_count;
        self.thrashing_delay_ns += other.thrashing_delay_ns;
    }
}

/// The sum over the records of `tasks`.
pub fn sum_of(records: &[(u32, Delays)], tasks: &HashSet<u32>) -> Delays {
    let mut sum = Delays::default();
    for (_, delays) in records.iter().filter(|(pid, _)| tasks.contains(pid)) {
        sum.add(delays);
    }
    sum
}

// From <linux/netlink.h>, <linux/genetlink.h> and <linux/taskstats.h>.
const NLMSG_HEADER: usize = 16;
const GENL_HEADER: usize = 4;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const TASKSTATS_GENL_VERSION: u8 = 1;
const TASKSTATS_CMD_GET: u8 = 1;
const TASKSTATS_CMD_NEW: u8 = 2;
const TASKSTATS_CMD_ATTR_REGISTER_CPUMASK: u16 = 3;
const TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK: u16 = 4;
const TASKSTATS_TYPE_PID: u16 = 1;
const TASKSTATS_TYPE_STATS: u16 = 3;
const TASKSTATS_TYPE_AGGR_PID: u16 = 4;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flags in an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Offsets in `struct taskstats` (the same since version 1 for blkio and swapin, version 4
/// for freepages, version 8 for thrashing; `offsetof` on this host's header).
const BLKIO: usize = 32;
const SWAPIN: usize = 48;
const FREEPAGES: usize = 312;
const THRASHING: usize = 328;

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// The attributes (type, payload) in `bytes`, each padded to 4 bytes.
fn attributes(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let Some(len) = u16_at(bytes, 0).map(usize::from) {
        let Some(kind) = u16_at(bytes, 2) else { break };
        if len < 4 || len > bytes.len() {
            break;
        }
        out.push((kind & NLA_TYPE_MASK, &bytes[4..len]));
        bytes = bytes.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// A `struct taskstats`'s delays (a kernel older than a field leaves it out: zero).
pub fn parse_taskstats(stats: &[u8]) -> Delays {
    Delays {
        tasks: 1,
        blkio_count: u64_at(stats, BLKIO),
        blkio_delay_ns: u64_at(stats, BLKIO + 8),
        swapin_count: u64_at(stats, SWAPIN),
        swapin_delay_ns: u64_at(stats, SWAPIN + 8),
        freepages_count: u64_at(stats, FREEPAGES),
        freepages_delay_ns: u64_at(stats, FREEPAGES + 8),
        thrashing_count: u64_at(stats, THRASHING),
        thrashing_delay_ns: u64_at(stats, THRASHING + 8),
    }
}

/// The netlink messages in `buffer` (one datagram), each with its type and payload.
fn messages(mut buffer: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let (Some(len), Some(kind)) = (u32_at(buffer, 0), u16_at(buffer, 4)) {
        let len = len as usize;
        if len < NLMSG_HEADER || len > buffer.len() {
            break;
        }
        out.push((kind, &buffer[NLMSG_HEADER..len]));
        buffer = buffer.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// Each task's exit record in a datagram of family `family`: (task id, its delays). The
/// per-process records a group's last exit also sends (AGGR_TGID) are left out: they repeat
/// the tasks' own.
pub fn parse_messages(buffer: &[u8], family: u16) -> Vec<(u32, Delays)> {
    let mut records = Vec::new();
    for (_, payload) in messages(buffer)
        .into_iter()
        .filter(|(kind, _)| *kind == family)
    {
        if payload.first() != Some(&TASKSTATS_CMD_NEW) {
            continue;
        }
        let Some(body) = payload.get(GENL_HEADER..) else {
            continue;
        };
        for (kind, nested) in attributes(body) {
            if kind != TASKSTATS_TYPE_AGGR_PID {
                continue;
            }
            let inner = attributes(nested);
            let pid = inner
                .iter()
                .find(|(k, _)| *k == TASKSTATS_TYPE_PID)
                .and_then(|(_, v)| u32_at(v, 0));
            let stats = inner.iter().find(|(k, _)| *k == TASKSTATS_TYPE_STATS);
            if let (Some(pid), Some((_, stats))) = (pid, stats) {
                records.push((pid, parse_taskstats(stats)));
            }
        }
    }
    records
}

/// A generic netlink request: header, genl header, one attribute.
fn request(family: u16, command: u8, version: u8, attribute: u16, value: &[u8]) -> Vec<u8> {
    let attribute_len = 4 + value.len();
    let len = NLMSG_HEADER + GENL_HEADER + attribute_len.next_multiple_of(4);
    let mut message = Vec::with_capacity(len);
    message.extend_from_slice(&(len as u32).to_ne_bytes());
    message.extend_from_slice(&family.to_ne_bytes());
    message.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    message.extend_from_slice(&[command, version, 0, 0]);
    message.extend_from_slice(&(attribute_len as u16).to_ne_bytes());
    message.extend_from_slice(&attribute.to_ne_bytes());
    message.extend_from_slice(value);
    message.resize(len, 0);
    message
}

/// The family id in a reply to CTRL_CMD_GETFAMILY; an error reply's errno otherwise.
fn family_id(reply: &[u8]) -> Result<u16, String> {
    for (kind, payload) in messages(reply) {
        if kind == NLMSG_ERROR {
            let errno = u32_at(payload, 0).map_or(0, |e| e as i32);
            return Err(format!("the kernel answered errno {}", -errno));
        }
        let Some(body) = payload.get(GENL_HEADER..) else {
            continue;
        };
        if let Some((_, id)) = attributes(body)
            .into_iter()
            .find(|(k, _)| *k == CTRL_ATTR_FAMILY_ID)
        {
            return u16_at(id, 0).ok_or_else(|| "a short family id".to_owned());
        }
    }
    Err("no family id in the reply".to_owned())
}

/// A socket registered for every CPU's exit records, from start to drop.
pub struct ExitListener {
    socket: OwnedFd,
    family: u16,
    cpus: String,
    /// Room for one datagram, kept: [`ExitListener::drain`] runs twice per run.
    buffer: Vec<u8>,
}

impl ExitListener {
    /// Register for the exit records of all `cpus` (the kernel's list syntax, as in
    /// `/sys/devices/system/cpu/possible`). Needs root.
    pub fn start(cpus: &str) -> Result<ExitListener, String> {
        let socket = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkGeneric,
        )
        .map_err(|e| format!("cannot make a generic netlink socket: {e}"))?;
        socket::bind(socket.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| format!("cannot bind the netlink socket: {e}"))?;
        // Room for the records of a run's many short tasks until they are read at its end.
        let _ = socket::setsockopt(&socket, socket::sockopt::RcvBufForce, &(8 << 20));
        let name = b"TASKSTATS\0";
        let ask = request(
            GENL_ID_CTRL,
            CTRL_CMD_GETFAMILY,
            1,
            CTRL_ATTR_FAMILY_NAME,
            name,
        );
        let kernel = NetlinkAddr::new(0, 0);
        socket::sendto(socket.as_raw_fd(), &ask, &kernel, MsgFlags::empty())
            .map_err(|e| format!("cannot ask for the TASKSTATS family: {e}"))?;
        let mut buffer = vec![0u8; DATAGRAM_BYTES];
        let reply = receive(&socket, true, &mut buffer)
            .map(<[u8]>::to_vec)
            .ok_or("no answer about the TASKSTATS family (a kernel without CONFIG_TASKSTATS?)")?;
        let family = family_id(&reply).map_err(|e| format!("the TASKSTATS family: {e}"))?;
        let mut cpumask = cpus.trim().as_bytes().to_vec();
        cpumask.push(0);
        let register = request(
            family,
            TASKSTATS_CMD_GET,
            TASKSTATS_GENL_VERSION,
            TASKSTATS_CMD_ATTR_REGISTER_CPUMASK,
            &cpumask,
        );
        socket::sendto(socket.as_raw_fd(), &register, &kernel, MsgFlags::empty())
            .map_err(|e| format!("cannot register for exit records on CPUs {cpus}: {e}"))?;
        Ok(ExitListener {
            socket,
            family,
            cpus: cpus.trim().to_owned(),
            buffer,
        })
    }

    /// Every exit record received so far: (task id, delays).
    pub fn drain(&mut self) -> Vec<(u32, Delays)> {
        let mut records = Vec::new();
        while let Some(datagram) = receive(&self.socket, false, &mut self.buffer) {
            records.extend(parse_messages(datagram, self.family));
        }
        records
    }
}

impl Drop for ExitListener {
    fn drop(&mut self) {
        let mut cpumask = self.cpus.as_bytes().to_vec();
        cpumask.push(0);
        let deregister = request(
            self.family,
            TASKSTATS_CMD_GET,
            TASKSTATS_GENL_VERSION,
            TASKSTATS_CMD_ATTR_DEREGISTER_CPUMASK,
            &cpumask,
        );
        let _ = socket::sendto(
            self.socket.as_raw_fd(),
            &deregister,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        );
    }
}

/// Room for the largest datagram the kernel sends us.
const DATAGRAM_BYTES: usize = 64 << 10;

/// One datagram, in `buffer`, or `None` when none is waiting (`wait`: for up to a second).
fn receive<'b>(socket: &OwnedFd, wait: bool, buffer: &'b mut [u8]) -> Option<&'b [u8]> {
    if wait {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(socket),
            nix::poll::PollFlags::POLLIN,
        )];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16)).ok()?;
    }
    let len = socket::recv(socket.as_raw_fd(), buffer, MsgFlags::empty()).ok()?;
    Some(&buffer[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attribute: length, type, payload, padding.
    fn attribute(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    fn message(family: u16, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HEADER + GENL_HEADER + body.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&family.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(&[TASKSTATS_CMD_NEW, 1, 0, 0]);
        out.extend_from_slice(body);
        out
    }

    fn stats(blkio_delay_ns: u64, thrashing_delay_ns: u64) -> Vec<u8> {
        let mut stats = vec![0u8; 416];
        stats[BLKIO..BLKIO + 8].copy_from_slice(&3u64.to_ne_bytes());
        stats[BLKIO + 8..BLKIO + 16].copy_from_slice(&blkio_delay_ns.to_ne_bytes());
        stats[THRASHING + 8..THRASHING + 16].copy_from_slice(&thrashing_delay_ns.to_ne_bytes());
        stats
    }

    #[test]
    fn exit_records_parse_per_task_and_leave_out_the_group_totals() {
        let family = 27;
        let task = |pid: u32, stats: &[u8]| {
            let mut nested = attribute(TASKSTATS_TYPE_PID, &pid.to_ne_bytes());
            nested.extend(attribute(TASKSTATS_TYPE_STATS, stats));
            nested
        };
        let mut body = attribute(TASKSTATS_TYPE_AGGR_PID, &task(41, &stats(5_000, 7)));
        // The group's totals when its last task exits: AGGR_TGID, not counted again.
        body.extend(attribute(5, &task(41, &stats(5_000, 7))));
        let mut datagram = message(family, &body);
        datagram.extend(message(
            family,
            &attribute(TASKSTATS_TYPE_AGGR_PID, &task(42, &stats(100, 0))),
        ));
        datagram.extend(message(
            family + 1,
            &attribute(TASKSTATS_TYPE_AGGR_PID, &task(43, &stats(9, 9))),
        ));
        let records = parse_messages(&datagram, family);
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[0].0, 41);
        assert_eq!(records[0].1.blkio_count, 3);
        assert_eq!(records[0].1.blkio_delay_ns, 5_000);
        assert_eq!(records[0].1.thrashing_delay_ns, 7);
        let sum = sum_of(&records, &HashSet::from([41, 42, 99]));
        assert_eq!((sum.tasks, sum.blkio_delay_ns), (2, 5_100));
        assert_eq!(sum_of(&records, &HashSet::from([99])), Delays::default());
    }

    #[test]
    fn an_old_kernels_short_record_has_no_later_delays() {
        let delays = parse_taskstats(&stats(10, 20)[..100]);
        assert_eq!((delays.blkio_delay_ns, delays.thrashing_delay_ns), (10, 0));
    }

    #[test]
    fn requests_are_padded_and_family_ids_are_read() {
        let ask = request(
            GENL_ID_CTRL,
            CTRL_CMD_GETFAMILY,
            1,
            CTRL_ATTR_FAMILY_NAME,
            b"TASKSTATS\0",
        );
        assert_eq!(ask.len(), 16 + 4 + 16);
        assert_eq!(u32_at(&ask, 0), Some(36));
        let reply = {
            let mut body = attribute(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0");
            body.extend(attribute(CTRL_ATTR_FAMILY_ID, &27u16.to_ne_bytes()));
            message(GENL_ID_CTRL, &body)
        };
        assert_eq!(family_id(&reply), Ok(27));
        let mut error = Vec::new();
        error.extend_from_slice(&20u32.to_ne_bytes());
        error.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error.extend_from_slice(&[0; 10]);
        error.extend_from_slice(&(-2i32).to_ne_bytes());
        assert_eq!(
            family_id(&error),
            Err("the kernel answered errno 2".to_owned())
        );
    }
}
