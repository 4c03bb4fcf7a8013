//! Cgroup statistics in containerd's metrics types: `io.containerd.cgroups.v1.Metrics`
//! for cgroup v1 (generated types), `io.containerd.cgroups.v2.Metrics` for v2
//! (hand-encoded: containerd-shim-protos 0.10 does not ship the v2 proto).

use containerd_shim_protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics,
    PidsStat, Throttle,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedOutputStream, Message, MessageField};

use crate::error::{Error, Result};
use crate::launcher::protocol::{self, CgroupStats};

pub const V1_TYPE: &str = "io.containerd.cgroups.v1.Metrics";
pub const V2_TYPE: &str = "io.containerd.cgroups.v2.Metrics";

pub fn to_any(stats: &CgroupStats) -> Result<Any> {
    let (type_url, value) = if stats.unified {
        (V2_TYPE, encode_v2(stats)?)
    } else {
        let value = v1(stats)
            .write_to_bytes()
            .map_err(|e| Error::Protocol(format!("encode v1 metrics: {e}")))?;
        (V1_TYPE, value)
    };
    Ok(Any {
        type_url: type_url.to_string(),
        value,
        ..Default::default()
    })
}

fn entry(e: &protocol::MemoryEntry) -> MessageField<MemoryEntry> {
    MessageField::some(MemoryEntry {
        limit: e.limit,
        usage: e.usage,
        max: e.max,
        failcnt: e.failcnt,
        ..Default::default()
    })
}

pub fn v1(s: &CgroupStats) -> Metrics {
    let stat = |k: &str| s.memory_stat.get(k).copied().unwrap_or(0);
    let blkio = |kind: &str| -> Vec<BlkIOEntry> {
        s.blkio
            .iter()
            .filter(|b| b.kind == kind)
            .map(|b| BlkIOEntry {
                op: b.op.clone(),
                major: b.major,
                minor: b.minor,
                value: b.value,
                ..Default::default()
            })
            .collect()
    };
    Metrics {
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| HugetlbStat {
                usage: h.usage,
                max: h.max,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: MessageField::some(PidsStat {
            current: s.pids_current,
            limit: s.pids_limit,
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: s.cpu_total,
                kernel: s.cpu_kernel,
                user: s.cpu_user,
                per_cpu: s.cpu_per_core.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(Throttle {
                periods: s.cpu_periods,
                throttled_periods: s.cpu_throttled_periods,
                throttled_time: s.cpu_throttled_time,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            cache: if s.memory_cache > 0 {
                s.memory_cache
            } else {
                stat("cache")
            },
            rss: stat("rss"),
            rss_huge: stat("rss_huge"),
            mapped_file: stat("mapped_file"),
            dirty: stat("dirty"),
            writeback: stat("writeback"),
            pg_pg_in: stat("pgpgin"),
            pg_pg_out: stat("pgpgout"),
            pg_fault: stat("pgfault"),
            pg_maj_fault: stat("pgmajfault"),
            inactive_anon: stat("inactive_anon"),
            active_anon: stat("active_anon"),
            inactive_file: stat("inactive_file"),
            active_file: stat("active_file"),
            unevictable: stat("unevictable"),
            hierarchical_memory_limit: stat("hierarchical_memory_limit"),
            hierarchical_swap_limit: stat("hierarchical_memsw_limit"),
            total_cache: stat("total_cache"),
            total_rss: stat("total_rss"),
            total_rss_huge: stat("total_rss_huge"),
            total_mapped_file: stat("total_mapped_file"),
            total_dirty: stat("total_dirty"),
            total_writeback: stat("total_writeback"),
            total_pg_pg_in: stat("total_pgpgin"),
            total_pg_pg_out: stat("total_pgpgout"),
            total_pg_fault: stat("total_pgfault"),
            total_pg_maj_fault: stat("total_pgmajfault"),
            total_inactive_anon: stat("total_inactive_anon"),
            total_active_anon: stat("total_active_anon"),
            total_inactive_file: stat("total_inactive_file"),
            total_active_file: stat("total_active_file"),
            total_unevictable: stat("total_unevictable"),
            usage: entry(&s.memory),
            swap: entry(&s.swap),
            kernel: entry(&s.kernel),
            kernel_tcp: entry(&s.kernel_tcp),
            ..Default::default()
        }),
        blkio: MessageField::some(BlkIOStat {
            io_service_bytes_recursive: blkio("service_bytes"),
            io_serviced_recursive: blkio("serviced"),
            io_queued_recursive: blkio("queued"),
            io_service_time_recursive: blkio("service_time"),
            io_wait_time_recursive: blkio("wait_time"),
            io_merged_recursive: blkio("merged"),
            io_time_recursive: blkio("time"),
            sectors_recursive: blkio("sectors"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Encodes one embedded message field from (field number, value) pairs of uint64s.
fn message(fields: &[(u32, u64)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut os = CodedOutputStream::vec(&mut out);
        for (n, v) in fields {
            if *v != 0 {
                os.write_uint64(*n, *v)
                    .map_err(|e| Error::Protocol(e.to_string()))?;
            }
        }
        os.flush().map_err(|e| Error::Protocol(e.to_string()))?;
    }
    Ok(out)
}

/// `io.containerd.cgroups.v2.Metrics`: pids = 1, cpu = 2, memory = 4.
pub fn encode_v2(s: &CgroupStats) -> Result<Vec<u8>> {
    let stat = |k: &str| s.memory_stat.get(k).copied().unwrap_or(0);
    // libcgroups reports v2 CPU in microseconds already for usage_*.
    let pids = message(&[(1, s.pids_current), (2, s.pids_limit)])?;
    let cpu = message(&[
        (1, s.cpu_total),
        (2, s.cpu_user),
        (3, s.cpu_kernel),
        (4, s.cpu_periods),
        (5, s.cpu_throttled_periods),
        (6, s.cpu_throttled_time),
    ])?;
    let memory = message(&[
        (1, stat("anon")),
        (2, stat("file")),
        (3, stat("kernel_stack")),
        (4, stat("slab")),
        (5, stat("sock")),
        (6, stat("shmem")),
        (7, stat("file_mapped")),
        (8, stat("file_dirty")),
        (9, stat("file_writeback")),
        (10, stat("anon_thp")),
        (11, stat("inactive_anon")),
        (12, stat("active_anon")),
        (13, stat("inactive_file")),
        (14, stat("active_file")),
        (15, stat("unevictable")),
        (16, stat("slab_reclaimable")),
        (17, stat("slab_unreclaimable")),
        (18, stat("pgfault")),
        (19, stat("pgmajfault")),
        (32, s.memory.usage),
        (33, s.memory.limit),
        (34, s.swap.usage),
        (35, s.swap.limit),
    ])?;
    let mut out = Vec::new();
    {
        let mut os = CodedOutputStream::vec(&mut out);
        let err = |e: containerd_shim_protos::protobuf::Error| Error::Protocol(e.to_string());
        os.write_bytes(1, &pids).map_err(err)?;
        os.write_bytes(2, &cpu).map_err(err)?;
        os.write_bytes(4, &memory).map_err(err)?;
        os.flush().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_metrics_round_trip() {
        let mut s = CgroupStats {
            cpu_total: 1000,
            pids_current: 3,
            pids_limit: 10,
            ..Default::default()
        };
        s.memory.usage = 4096;
        s.memory_stat.insert("total_rss".into(), 77);
        let any = to_any(&s).unwrap();
        assert_eq!(any.type_url, V1_TYPE);
        let m = Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.cpu.usage.total, 1000);
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.total_rss, 77);
    }

    #[test]
    fn v2_metrics_have_the_v2_type_and_fields() {
        let s = CgroupStats {
            unified: true,
            pids_current: 2,
            cpu_total: 5,
            ..Default::default()
        };
        let any = to_any(&s).unwrap();
        assert_eq!(any.type_url, V2_TYPE);
        // field 1 (pids), length 2, {field 1 = 2}
        assert_eq!(&any.value[..4], &[0x0a, 0x02, 0x08, 0x02]);
        // field 2 (cpu), length 2, {field 1 = 5}
        assert_eq!(&any.value[4..8], &[0x12, 0x02, 0x08, 0x05]);
    }
}
