//! Ethernet ports: configuration, start/stop, link, stats and bursts.

use std::ffi::{CStr, CString};

use crate::error::{FfiError, ToResult};
use crate::ids::{PortId, QueueId, SocketId};
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;
use crate::sys;

/// Queue and descriptor counts for [`Port::configure`].
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Spread received frames over the rx queues with RSS when the device
    /// supports it and there is more than one queue.
    pub rss: bool,
    /// Receive frames for every MAC (needed to see broadcast-free L2 peers
    /// on some PMDs; harmless on virtual ones).
    pub promiscuous: bool,
    /// Layer-3 MTU; `None` keeps the device's default (1500).
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: true,
            promiscuous: true,
            mtu: None,
        }
    }
}

/// Link state as the PMD reports it (virtual PMDs invent speeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Basic counters from `rte_eth_stats_get`, with the first 16 queues'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Frames the hardware dropped because rx queues were full.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
    pub q_rx_packets: [u64; 16],
    pub q_tx_packets: [u64; 16],
    pub q_rx_bytes: [u64; 16],
    pub q_tx_bytes: [u64; 16],
}

/// What the device can do.
#[derive(Debug, Clone)]
pub struct DevInfo {
    pub driver_name: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub reta_size: u16,
    pub hash_key_size: u8,
    pub flow_type_rss_offloads: u64,
}

/// An ethdev port. The handle is a plain id; closing is explicit because a
/// secondary process must not close the primary's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    id: PortId,
}

impl Port {
    /// The port with this id, if it exists.
    pub fn from_id(id: PortId) -> Result<Port, FfiError> {
        // SAFETY: plain check.
        if unsafe { sys::rte_eth_dev_is_valid_port(id.raw()) } == 0 {
            return Err(FfiError::NoSuchPort(format!("{id}")));
        }
        Ok(Port { id })
    }

    /// The port of a device name (a vdev name such as `net_ring0`).
    pub fn by_name(name: &str) -> Result<Port, FfiError> {
        let c = CString::new(name).map_err(|_| FfiError::NoSuchPort(name.into()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(FfiError::NoSuchPort(name.into()));
        }
        Ok(Port {
            id: PortId::new(id),
        })
    }

    /// Creates a device at run time from devargs (`net_null1`,
    /// `net_af_packet0,iface=veth0`) and returns its port.
    pub fn probe(devargs: &str) -> Result<Port, FfiError> {
        let c = CString::new(devargs).map_err(|_| FfiError::InvalidArgument {
            call: "rte_dev_probe",
            reason: "devargs contain a NUL byte".into(),
        })?;
        // SAFETY: valid C string.
        unsafe { sys::rte_dev_probe(c.as_ptr()) }.into_result("rte_dev_probe")?;
        let name = devargs.split(',').next().unwrap_or(devargs);
        Port::by_name(name)
    }

    /// Number of ports available.
    pub fn count() -> u16 {
        // SAFETY: getter.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    pub fn id(&self) -> PortId {
        self.id
    }

    /// The device's name.
    pub fn name(&self) -> Result<String, FfiError> {
        let mut buf = [0 as std::ffi::c_char; 64];
        // SAFETY: buffer of RTE_ETH_NAME_MAX_LEN bytes.
        unsafe { sys::rte_eth_dev_get_name_by_port(self.id.raw(), buf.as_mut_ptr()) }
            .into_result("rte_eth_dev_get_name_by_port")?;
        // SAFETY: DPDK NUL-terminates within the buffer.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    pub fn info(&self) -> Result<DevInfo, FfiError> {
        let mut di = sys::rte_eth_dev_info::default();
        // SAFETY: out-pointer to a zeroed struct.
        unsafe { sys::rte_eth_dev_info_get(self.id.raw(), &mut di) }
            .into_result("rte_eth_dev_info_get")?;
        let driver_name = if di.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: static driver name string.
            unsafe { CStr::from_ptr(di.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(DevInfo {
            driver_name,
            max_rx_queues: di.max_rx_queues,
            max_tx_queues: di.max_tx_queues,
            min_mtu: di.min_mtu,
            max_mtu: di.max_mtu,
            reta_size: di.reta_size,
            hash_key_size: di.hash_key_size,
            flow_type_rss_offloads: di.flow_type_rss_offloads,
        })
    }

    /// Configures queues (rx queues draw mbufs from `pool`). Call before
    /// [`Port::start`], or after [`Port::stop`] to reconfigure.
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool) -> Result<(), FfiError> {
        let info = self.info()?;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(FfiError::InvalidArgument {
                call: "rte_eth_dev_configure",
                reason: format!(
                    "{} rx queues requested, device allows 1..={}",
                    cfg.rx_queues, info.max_rx_queues
                ),
            });
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(FfiError::InvalidArgument {
                call: "rte_eth_dev_configure",
                reason: format!(
                    "{} tx queues requested, device allows 1..={}",
                    cfg.tx_queues, info.max_tx_queues
                ),
            });
        }
        let mut conf = sys::rte_eth_conf::default();
        if cfg.rss && cfg.rx_queues > 1 && info.flow_type_rss_offloads != 0 {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            // Default key (NULL) and every hash type the device offers.
            conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads;
        }
        if let Some(mtu) = cfg.mtu {
            conf.rxmode.mtu = mtu as u32;
        }
        let id = self.id.raw();
        // SAFETY: conf is a valid, initialised struct for the call.
        unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) }
            .into_result("rte_eth_dev_configure")?;
        let socket = self.socket();
        for q in 0..cfg.rx_queues {
            // SAFETY: NULL rxconf selects the device defaults; pool outlives
            // the port's use of it (caller keeps it alive).
            unsafe {
                sys::rte_eth_rx_queue_setup(
                    id,
                    q,
                    cfg.rx_desc,
                    socket.raw() as u32,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            }
            .into_result("rte_eth_rx_queue_setup")?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: NULL txconf selects the device defaults.
            unsafe {
                sys::rte_eth_tx_queue_setup(
                    id,
                    q,
                    cfg.tx_desc,
                    socket.raw() as u32,
                    std::ptr::null(),
                )
            }
            .into_result("rte_eth_tx_queue_setup")?;
        }
        if cfg.promiscuous {
            // Not every PMD supports it (net_ring does not); that is fine.
            // SAFETY: plain call.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(id) };
        }
        Ok(())
    }

    pub fn start(&self) -> Result<(), FfiError> {
        // SAFETY: plain call.
        unsafe { sys::rte_eth_dev_start(self.id.raw()) }.into_result("rte_eth_dev_start")?;
        Ok(())
    }

    pub fn stop(&self) -> Result<(), FfiError> {
        // SAFETY: plain call.
        unsafe { sys::rte_eth_dev_stop(self.id.raw()) }.into_result("rte_eth_dev_stop")?;
        Ok(())
    }

    /// Releases the device (stop it first).
    pub fn close(&self) -> Result<(), FfiError> {
        // SAFETY: plain call.
        unsafe { sys::rte_eth_dev_close(self.id.raw()) }.into_result("rte_eth_dev_close")?;
        Ok(())
    }

    pub fn set_link_up(&self) -> Result<(), FfiError> {
        // SAFETY: plain call.
        unsafe { sys::rte_eth_dev_set_link_up(self.id.raw()) }
            .into_result("rte_eth_dev_set_link_up")?;
        Ok(())
    }

    pub fn set_link_down(&self) -> Result<(), FfiError> {
        // SAFETY: plain call.
        unsafe { sys::rte_eth_dev_set_link_down(self.id.raw()) }
            .into_result("rte_eth_dev_set_link_down")?;
        Ok(())
    }

    /// NUMA socket of the device (`ANY` for virtual devices).
    pub fn socket(&self) -> SocketId {
        // SAFETY: getter.
        SocketId::new(unsafe { sys::rte_eth_dev_socket_id(self.id.raw()) })
    }

    pub fn mac(&self) -> Result<[u8; 6], FfiError> {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: out-pointer.
        unsafe { sys::rte_eth_macaddr_get(self.id.raw(), &mut a) }
            .into_result("rte_eth_macaddr_get")?;
        Ok(a.addr_bytes)
    }

    /// Sets the port's default MAC address (`rte_eth_dev_default_mac_addr_set`).
    /// Fails with `ENOTSUP` on devices that cannot change it (`net_ring`).
    pub fn set_mac(&self, mac: &[u8; 6]) -> Result<(), FfiError> {
        let mut a = sys::rte_ether_addr { addr_bytes: *mac };
        // SAFETY: valid address for the call; DPDK copies it.
        unsafe { sys::rte_eth_dev_default_mac_addr_set(self.id.raw(), &mut a) }
            .into_result("rte_eth_dev_default_mac_addr_set")
            .map(|_| ())
    }

    /// Link status without waiting.
    pub fn link(&self) -> Result<LinkStatus, FfiError> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: out-pointer.
        unsafe { sys::rte_eth_link_get_nowait(self.id.raw(), &mut l) }
            .into_result("rte_eth_link_get_nowait")?;
        Ok(LinkStatus {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }

    pub fn stats(&self) -> Result<PortStats, FfiError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: out-pointer.
        unsafe { sys::rte_eth_stats_get(self.id.raw(), &mut s) }
            .into_result("rte_eth_stats_get")?;
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
            q_rx_packets: s.q_ipackets,
            q_tx_packets: s.q_opackets,
            q_rx_bytes: s.q_ibytes,
            q_tx_bytes: s.q_obytes,
        })
    }

    pub fn reset_stats(&self) -> Result<(), FfiError> {
        // SAFETY: plain call.
        unsafe { sys::rte_eth_stats_reset(self.id.raw()) }.into_result("rte_eth_stats_reset")?;
        Ok(())
    }

    /// Extended statistics as (name, value) pairs.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, FfiError> {
        let id = self.id.raw();
        // SAFETY: a NULL array asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0) }
            .into_result("rte_eth_xstats_get_names")? as usize;
        let mut names = vec![sys::rte_eth_xstat_name::default(); n];
        let mut vals = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: arrays of n entries.
        let got = unsafe { sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), n as u32) }
            .into_result("rte_eth_xstats_get_names")? as usize;
        // SAFETY: as above.
        let gotv = unsafe { sys::rte_eth_xstats_get(id, vals.as_mut_ptr(), n as u32) }
            .into_result("rte_eth_xstats_get")? as usize;
        Ok(vals[..got.min(gotv).min(n)]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates names within 64 bytes.
                let s = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((s.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }

    /// The RSS key and hash types in use (`Err` with ENOTSUP on PMDs
    /// without RSS, such as most virtual ones).
    pub fn rss_hash_conf(&self) -> Result<(Vec<u8>, u64), FfiError> {
        let mut key = [0u8; 64];
        let mut conf = sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: key.len() as u8,
            rss_hf: 0,
        };
        // SAFETY: key buffer of 64 bytes outlives the call.
        unsafe { sys::rte_eth_dev_rss_hash_conf_get(self.id.raw(), &mut conf) }
            .into_result("rte_eth_dev_rss_hash_conf_get")?;
        let len = (conf.rss_key_len as usize).min(key.len());
        Ok((key[..len].to_vec(), conf.rss_hf))
    }

    /// The redirection table (RETA): one rx queue per hash bucket.
    pub fn reta(&self) -> Result<Vec<u16>, FfiError> {
        let size = self.info()?.reta_size as usize;
        if size == 0 {
            return Err(FfiError::from_errno(
                "rte_eth_dev_rss_reta_query",
                libc::ENOTSUP,
            ));
        }
        let groups = size.div_ceil(64);
        let mut conf = vec![sys::rte_eth_rss_reta_entry64::default(); groups];
        for c in conf.iter_mut() {
            c.mask = u64::MAX;
        }
        // SAFETY: groups * 64 entries >= size.
        unsafe { sys::rte_eth_dev_rss_reta_query(self.id.raw(), conf.as_mut_ptr(), size as u16) }
            .into_result("rte_eth_dev_rss_reta_query")?;
        Ok(conf.iter().flat_map(|c| c.reta).take(size).collect())
    }

    /// Receives up to the burst's free room; returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&self, queue: QueueId, burst: &mut MbufBurst<N>) -> usize {
        let (ptr, room) = burst.spare_ptr();
        if room == 0 {
            return 0;
        }
        // SAFETY: ptr has room for `room` entries; the PMD writes owned mbufs.
        let n = unsafe { sys::_rte_eth_rx_burst(self.id.raw(), queue.raw(), ptr, room as u16) }
            as usize;
        // SAFETY: n entries were just filled.
        unsafe { burst.grow(n) };
        n
    }

    /// Like [`Port::tx_burst`] but offers at most `max` mbufs (pacing).
    #[inline]
    pub fn tx_burst_max<const N: usize>(
        &self,
        queue: QueueId,
        burst: &mut MbufBurst<N>,
        max: usize,
    ) -> usize {
        let len = burst.len().min(max);
        if len == 0 {
            return 0;
        }
        // SAFETY: as tx_burst, on a prefix of the held entries.
        let n = unsafe {
            sys::_rte_eth_tx_burst(self.id.raw(), queue.raw(), burst.held_ptr(), len as u16)
        } as usize;
        // SAFETY: the first n entries now belong to the PMD.
        unsafe { burst.consume_front(n) };
        n
    }

    /// Sends from the front of the burst; unsent mbufs stay in it, in order,
    /// for the caller to retry or drop (drop frees them). Returns how many
    /// were sent.
    #[inline]
    pub fn tx_burst<const N: usize>(&self, queue: QueueId, burst: &mut MbufBurst<N>) -> usize {
        let len = burst.len();
        if len == 0 {
            return 0;
        }
        // SAFETY: the first len entries are owned mbufs; the PMD takes the
        // first n of them.
        let n = unsafe {
            sys::_rte_eth_tx_burst(self.id.raw(), queue.raw(), burst.held_ptr(), len as u16)
        } as usize;
        // SAFETY: the first n entries now belong to the PMD.
        unsafe { burst.consume_front(n) };
        n
    }
}
