//! Packets from a TUN device opened with IFF_VNET_HDR (the kernel's bytes,
//! but our parser must not trust them): the `virtio_net_hdr`, checksum
//! completion and TCP segmentation, then the segments merged back by the
//! coalescer. Every segment must carry a right TCP checksum, the segments'
//! payloads must add up to the super-packet's, and merging then cutting
//! again must give the same segments. Seeds: seeds/tun_offload.
//! Run: cd node-lite/fuzz && cargo +nightly fuzz run tun_offload seeds/tun_offload
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_lite::offload::{
    self, Coalescer, VnetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_TCPV6, VNET_HDR_LEN,
};

/// RFC 1071, 16 bits at a time: independent of ip::sum.
fn csum_ok(data: &[u8]) -> bool {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

fn tcp_ok(p: &[u8]) -> bool {
    let mut v = p[8..40].to_vec();
    v.extend_from_slice(&((p.len() - 40) as u32).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 6]);
    v.extend_from_slice(&p[40..]);
    csum_ok(&v)
}

/// Every packet a frame (virtio_net_hdr + packet) stands for.
fn cut(frame: &[u8]) -> Option<Vec<Vec<u8>>> {
    let hdr = VnetHdr::parse(frame)?;
    let mut pkt = frame[VNET_HDR_LEN..].to_vec();
    let mut out = vec![0u8; 65536 + 100];
    match offload::prepare(&hdr, &mut pkt) {
        Ok(None) => Some(vec![pkt]),
        Ok(Some(mut segs)) => {
            let mut v = Vec::new();
            let n = segs.remaining();
            while let Some(r) = segs.next_into(&mut out) {
                let len = r.ok()?;
                assert!(len <= segs.max_len());
                v.push(out[..len].to_vec());
            }
            assert_eq!(v.len(), n);
            Some(v)
        }
        Err(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(hdr) = VnetHdr::parse(data) else {
        return;
    };
    let Some(segs) = cut(data) else { return };
    if hdr.gso_type & !GSO_ECN == GSO_TCPV6 {
        let l4 = if hdr.flags & F_NEEDS_CSUM != 0 {
            usize::from(hdr.csum_start)
        } else {
            40
        };
        let head = l4 + usize::from(data[VNET_HDR_LEN + l4 + 12] >> 4) * 4;
        let mut payload = Vec::new();
        for s in &segs {
            if l4 == 40 {
                assert!(tcp_ok(s), "bad segment checksum");
            }
            payload.extend_from_slice(&s[head..]);
        }
        assert_eq!(payload, &data[VNET_HDR_LEN + head..]);
    }
    // Merge what can be merged, cut again: the same packets.
    let mut c = Coalescer::default();
    let mut again = Vec::new();
    for s in &segs {
        if !c.push(s) {
            if let Some(f) = c.take() {
                again.extend(cut(f).expect("our own frame"));
            }
            if !c.push(s) {
                again.push(s.clone());
            }
        }
    }
    if let Some(f) = c.take() {
        again.extend(cut(f).expect("our own frame"));
    }
    assert_eq!(again, segs);
});
