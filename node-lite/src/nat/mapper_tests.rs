//! The port mapper's tests: scripted gateways, then real miniupnpd answers.

mod unit {
    use super::super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(1_000_000 + ms)
    }

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn mapper() -> Mapper {
        let mut m = Mapper::new(1194, 7);
        m.set_gateway(t(0), Some(GW), Some(ME));
        assert!(m.poll_out().is_none(), "nothing until wanted");
        m.set_wanted(t(0), true);
        m
    }

    fn udp(m: &mut Mapper) -> Vec<(SocketAddr, Vec<u8>)> {
        std::iter::from_fn(|| m.poll_out())
            .map(|o| match o {
                Out::Udp(a, b) => (a, b),
                Out::Http(..) => panic!("HTTP where a datagram was expected"),
            })
            .collect()
    }

    fn http(m: &mut Mapper) -> String {
        match m.poll_out() {
            Some(Out::Http(to, b)) => {
                assert_eq!(to, "192.0.2.1:5000".parse().unwrap());
                String::from_utf8(b).unwrap()
            }
            o => panic!("{o:?}"),
        }
    }

    fn pcp_answer(req: &[u8], epoch: u32, ext_port: u16) -> Vec<u8> {
        let mut a = req.to_vec();
        a[1] |= 0x80;
        a[8..12].copy_from_slice(&epoch.to_be_bytes());
        a[42..44].copy_from_slice(&ext_port.to_be_bytes());
        a[44..60].copy_from_slice(&Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped().octets());
        a
    }

    const PCP_FROM: &str = "192.0.2.1:5351";

    #[test]
    fn pcp_maps_renews_and_notices_a_restart() {
        let mut m = mapper();
        let sent = udp(&mut m);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, PCP_FROM.parse().unwrap());
        // Only the gateway is listened to.
        m.handle_udp(
            t(10),
            "192.0.2.9:5351".parse().unwrap(),
            &pcp_answer(&sent[0].1, 100, 1194),
        );
        assert!(m.mapping().is_none());
        m.handle_udp(
            t(10),
            PCP_FROM.parse().unwrap(),
            &pcp_answer(&sent[0].1, 100, 1194),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external),
            (Protocol::Pcp, "203.0.113.1:1194".parse().unwrap())
        );
        assert!(m.take_changed() && !m.take_changed());
        // Asked again every CHECK_MS; a restarted gateway (epoch back to 1)
        // gets the same request, which makes the mapping again.
        assert_eq!(m.poll_timeout(), Some(t(10 + CHECK_MS)));
        m.handle_timeout(t(10 + CHECK_MS));
        let again = udp(&mut m);
        assert_eq!(again.len(), 1);
        m.handle_udp(
            t(20 + CHECK_MS),
            PCP_FROM.parse().unwrap(),
            &pcp_answer(&again[0].1, 1, 1194),
        );
        assert!(m.mapping().is_some() && !m.take_changed());
        // A renewal with no answer loses the mapping and starts over.
        m.handle_timeout(t(20 + 2 * CHECK_MS));
        let mut now = 20 + 2 * CHECK_MS;
        for _ in 0..TRIES {
            udp(&mut m);
            now = m.poll_timeout().unwrap().millis_since(t(0));
            m.handle_timeout(t(now));
        }
        assert!(m.mapping().is_none() && m.take_changed());
        // ... with PCP first again.
        assert_eq!(udp(&mut m)[0].1[0], 2);
        // At stop, a mapping is deleted (lifetime 0).
        m.handle_udp(
            t(now + 1),
            PCP_FROM.parse().unwrap(),
            &pcp_answer(&again[0].1, 5, 1194),
        );
        m.release();
        let del = udp(&mut m);
        assert_eq!(&del[0].1[4..8], &[0, 0, 0, 0]);
        assert!(m.mapping().is_none() && m.poll_timeout().is_none());
    }

    #[test]
    fn nat_pmp_after_pcp_is_refused() {
        let mut m = mapper();
        udp(&mut m);
        m.handle_udp(t(5), PCP_FROM.parse().unwrap(), &[0, 0x81, 0, 1]);
        let sent = udp(&mut m);
        assert_eq!(sent.iter().map(|s| s.1[1]).collect::<Vec<_>>(), [0, 1]);
        m.handle_udp(
            t(6),
            PCP_FROM.parse().unwrap(),
            &[0, 129, 0, 0, 0, 0, 0, 9, 4, 0xaa, 4, 0xab, 0, 0, 0x0e, 0x10],
        );
        assert!(m.mapping().is_none(), "the address is still missing");
        m.handle_udp(
            t(7),
            PCP_FROM.parse().unwrap(),
            &[0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 1],
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external),
            (Protocol::NatPmp, "203.0.113.1:1195".parse().unwrap())
        );
    }

    #[test]
    fn upnp_when_nothing_answers_on_5351() {
        let mut m = mapper();
        // PCP, then NAT-PMP, time out.
        let mut now = 0;
        while udp(&mut m).iter().all(|(a, _)| a.port() == 5351) {
            now = m.poll_timeout().unwrap().millis_since(t(0));
            m.handle_timeout(t(now));
        }
        assert!(now < 10_000, "{now} ms to give up PCP and NAT-PMP");
        let ssdp =
            b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
LOCATION: http://192.0.2.1:5000/rootDesc.xml\r\n\r\n";
        m.handle_udp(t(now), "192.0.2.1:1900".parse().unwrap(), ssdp);
        assert!(http(&mut m).starts_with("GET /rootDesc.xml "));
        let desc = "HTTP/1.1 200 OK\r\n\r\n<root><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1\
</serviceType><controlURL>/ctl/IPConn</controlURL></service></root>";
        m.handle_http(t(now), Ok(desc.as_bytes().to_vec()));
        assert!(http(&mut m).contains("#AddPortMapping"));
        let conflict = "HTTP/1.1 500 x\r\n\r\n<errorCode>718</errorCode>";
        m.handle_http(t(now), Ok(conflict.as_bytes().to_vec()));
        let retry = http(&mut m);
        assert!(retry.contains("#AddPortMapping") && !retry.contains("<NewExternalPort>1194<"));
        m.handle_http(t(now), Ok(b"HTTP/1.1 200 OK\r\n\r\n<ok/>".to_vec()));
        assert!(http(&mut m).contains("#GetExternalIPAddress"));
        m.handle_http(
            t(now),
            Ok(
                b"HTTP/1.1 200 OK\r\n\r\n<NewExternalIPAddress>203.0.113.1</NewExternalIPAddress>"
                    .to_vec(),
            ),
        );
        let got = m.mapping().unwrap().clone();
        assert_eq!(
            (got.protocol, got.external.ip()),
            (Protocol::Upnp, &Ipv4Addr::new(203, 0, 113, 1))
        );
        // The renewal goes straight to AddPortMapping, same port.
        m.handle_timeout(t(now + CHECK_MS));
        assert!(http(&mut m).contains(&format!("<NewExternalPort>{}<", got.external.port())));
        m.handle_http(t(now + CHECK_MS), Err("connection refused".into()));
        assert!(m.mapping().is_none() && m.take_changed());
        assert_eq!(udp(&mut m)[0].1[0], 2, "every protocol again, PCP first");
    }

    #[test]
    fn all_failed_waits_then_tries_again() {
        let mut m = mapper();
        let mut now = 0;
        for _ in 0..50 {
            udp(&mut m);
            now = m.poll_timeout().unwrap().millis_since(t(0));
            if now >= RETRY_MS {
                break;
            }
            m.handle_timeout(t(now));
        }
        assert!(
            m.last_error().is_some_and(|e| e.contains("UPnP")),
            "{:?}",
            m.last_error()
        );
        m.handle_timeout(t(now));
        assert_eq!(udp(&mut m)[0].1[0], 2, "PCP again");
    }
}

/// The real miniupnpd's answers (`testdata/`, captured by
/// `tests/tools/capture-miniupnpd.sh` from our own requests), through the
/// mapper.
mod captured {
    use super::super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PCP_FROM: &str = "192.0.2.1:5351";

    fn t(ms: u64) -> Instant {
        Instant::from_millis(1_000_000 + ms)
    }

    fn mapper() -> Mapper {
        let mut m = Mapper::new(1194, 7);
        m.set_gateway(t(0), Some(GW), Some(Ipv4Addr::new(192, 0, 2, 2)));
        m.set_wanted(t(0), true);
        m
    }

    #[test]
    fn pcp_map_announce_and_delete() {
        let mut m = mapper();
        let _ = m.poll_out();
        // The capture was made with nonce 01..0c.
        m.nonce = *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c";
        m.handle_udp(
            t(5),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pcp-map.bin"),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external, got.lifetime),
            (Protocol::Pcp, "203.0.113.1:1194".parse().unwrap(), 3600)
        );
        // miniupnpd's ANNOUNCE at start (from its port 5351): map again now.
        m.handle_udp(
            t(10),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pcp-announce.bin"),
        );
        assert!(
            matches!(m.poll_out(), Some(Out::Udp(_, r)) if r[1] == 1 && r[4..8] == 3600u32.to_be_bytes())
        );
        // Its answer to a deletion is no mapping.
        assert_eq!(
            pmp::parse(include_bytes!("testdata/pcp-delete.bin"))
                .map(|r| matches!(r, Reply::Pcp { lifetime: 0, .. })),
            Some(true)
        );
    }

    #[test]
    fn nat_pmp_map() {
        let mut m = mapper();
        m.handle_udp(t(5), PCP_FROM.parse().unwrap(), &[0, 0x81, 0, 1]); // a NAT-PMP-only gateway
        m.handle_udp(
            t(6),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pmp-map.bin"),
        );
        m.handle_udp(
            t(7),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pmp-external.bin"),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external),
            (Protocol::NatPmp, "203.0.113.1:1194".parse().unwrap())
        );
        assert!(matches!(
            pmp::parse(include_bytes!("testdata/pmp-delete.bin")),
            Some(Reply::PmpMap {
                external_port: 0,
                lifetime: 0,
                ..
            })
        ));
    }

    #[test]
    fn upnp_discovery_to_mapping() {
        let mut m = mapper();
        // PCP and NAT-PMP unanswered.
        while !matches!(m.step, Step::Ssdp { .. }) {
            let at = m.poll_timeout().unwrap();
            m.handle_timeout(at);
        }
        let now = m.poll_timeout().unwrap();
        while m.poll_out().is_some() {}
        m.handle_udp(
            now,
            "192.0.2.1:1900".parse().unwrap(),
            include_bytes!("testdata/ssdp.txt"),
        );
        assert!(
            matches!(m.poll_out(), Some(Out::Http(a, _)) if a == "192.0.2.1:5000".parse().unwrap())
        );
        m.handle_http(now, Ok(include_bytes!("testdata/rootdesc.http").to_vec()));
        let Some(Out::Http(_, add)) = m.poll_out() else {
            panic!("no AddPortMapping")
        };
        let add = String::from_utf8(add).unwrap();
        assert!(add.starts_with("POST /ctl/IPConn HTTP/1.0\r\n"), "{add}");
        assert!(add.contains("service:WANIPConnection:2#AddPortMapping"));
        // Another host holds the port: another one is asked for.
        m.handle_http(
            now,
            Ok(include_bytes!("testdata/soap-conflict.http").to_vec()),
        );
        assert!(
            matches!(m.poll_out(), Some(Out::Http(_, r)) if !String::from_utf8_lossy(&r).contains("<NewExternalPort>1194<"))
        );
        m.handle_http(now, Ok(include_bytes!("testdata/soap-add.http").to_vec()));
        assert!(
            matches!(m.poll_out(), Some(Out::Http(_, r)) if String::from_utf8_lossy(&r).contains("#GetExternalIPAddress"))
        );
        m.handle_http(
            now,
            Ok(include_bytes!("testdata/soap-external.http").to_vec()),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, *got.external.ip()),
            (Protocol::Upnp, Ipv4Addr::new(203, 0, 113, 1))
        );
        assert_eq!(
            upnp::parse_soap(include_bytes!("testdata/soap-delete.http")).map(|_| ()),
            Ok(())
        );
    }
}
