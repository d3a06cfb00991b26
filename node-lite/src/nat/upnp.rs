//! UPnP-IGD, the part a port mapping needs: SSDP discovery, the gateway's
//! description (which service, at which control URL) and three SOAP
//! actions (AddPortMapping, GetExternalIPAddress, DeletePortMapping).
//! Text in, text out; the driver moves the bytes (UDP for SSDP, one TCP
//! exchange per HTTP request). The XML is read by looking for the few
//! elements we need, as miniupnpc's own minimal parser does: a gateway's
//! description is small and flat, and a full XML parser would cost flash.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

pub const SSDP_PORT: u16 = 1900;
pub const SSDP_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// Longest HTTP answer read (a gateway's description is a few KB).
pub const MAX_RESPONSE: usize = 65536;
/// The services that map ports, in order of preference.
const SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];
/// SOAP fault codes (UPnP IGD WANIPConnection spec).
pub const CONFLICT: u16 = 718;
pub const ONLY_PERMANENT_LEASES: u16 = 725;

/// The SSDP search for gateways.
pub fn msearch() -> Vec<u8> {
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n\
ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
        .to_vec()
}

/// An HTTP header's value (case-insensitive name) in a head of lines.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// An SSDP answer: the gateway description's URL.
pub fn parse_ssdp(d: &[u8]) -> Option<Url> {
    let text = std::str::from_utf8(d).ok()?;
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("NOTIFY") {
        return None;
    }
    let st = header(text, "ST").or_else(|| header(text, "NT"))?;
    if !st.contains("InternetGatewayDevice") && !st.contains("WANIPConnection") {
        return None;
    }
    Url::parse(header(text, "LOCATION")?)
}

/// An `http://a.b.c.d[:port]/path` URL: gateways give their LAN address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: SocketAddrV4,
    pub path: String,
}

impl Url {
    pub fn parse(s: &str) -> Option<Url> {
        let rest = s.strip_prefix("http://")?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = match hostport.split_once(':') {
            Some((h, p)) => SocketAddrV4::new(h.parse().ok()?, p.parse().ok()?),
            None => SocketAddrV4::new(hostport.parse().ok()?, 80),
        };
        Some(Url {
            host,
            path: path.into(),
        })
    }

    /// A URL from the description: absolute, or a path on this host.
    fn join(&self, s: &str) -> Option<Url> {
        if s.starts_with("http://") {
            return Url::parse(s);
        }
        let path = if s.starts_with('/') {
            s.to_string()
        } else {
            format!("/{s}")
        };
        Some(Url {
            host: self.host,
            path,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(self.host)
    }
}

/// An HTTP/1.0 request (the answer then has no chunked encoding, and the
/// connection closes after it).
fn request(url: &Url, head: &str, body: &str) -> Vec<u8> {
    format!(
        "{head} {} HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n{}\r\n{body}",
        url.path,
        url.host,
        body.len(),
        if body.is_empty() {
            ""
        } else {
            "Content-Type: text/xml; charset=\"utf-8\"\r\n"
        }
    )
    .into_bytes()
}

pub fn get(url: &Url) -> Vec<u8> {
    request(url, "GET", "")
}

/// An HTTP answer: status and body.
pub fn parse_http(d: &[u8]) -> Option<(u16, &str)> {
    let text = std::str::from_utf8(d).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body))
}

/// The text of the first `<name>` element (namespace prefixes ignored).
pub fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        let local = tag.rsplit(':').next().unwrap_or(tag);
        if local == name {
            let body = &rest[end + 1..];
            let close = body.find("</")?;
            return Some(body[..close].trim());
        }
    }
    None
}

/// A gateway's port-mapping service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub kind: &'static str,
    pub control: Url,
}

/// The best port-mapping service of a gateway description found at `base`.
pub fn find_service(xml: &str, base: &Url) -> Option<Service> {
    let blocks: Vec<&str> = xml.split("<service>").skip(1).collect();
    SERVICES.iter().find_map(|&kind| {
        let block = blocks
            .iter()
            .find(|b| element(b, "serviceType") == Some(kind))?;
        let control = base.join(element(block, "controlURL")?)?;
        Some(Service { kind, control })
    })
}

/// A SOAP action of `service` with its arguments.
pub fn soap(service: &Service, action: &str, args: &[(&str, String)]) -> Vec<u8> {
    let mut inner = String::new();
    for (k, v) in args {
        inner.push_str(&format!("<{k}>{v}</{k}>"));
    }
    let body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
<u:{action} xmlns:u=\"{}\">{inner}</u:{action}></s:Body></s:Envelope>\r\n",
        service.kind
    );
    let mut req = request(&service.control, "POST", &body);
    // The SOAPAction header goes with the others, before the blank line.
    let soap_action = format!("SOAPAction: \"{}#{action}\"\r\n", service.kind);
    let at = req
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |i| i + 2);
    req.splice(at..at, soap_action.into_bytes());
    req
}

/// AddPortMapping of UDP `port` (external and internal) to `client`.
pub fn add_mapping(
    service: &Service,
    external: u16,
    port: u16,
    client: Ipv4Addr,
    lease: u32,
) -> Vec<u8> {
    soap(
        service,
        "AddPortMapping",
        &[
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external.to_string()),
            ("NewProtocol", "UDP".into()),
            ("NewInternalPort", port.to_string()),
            ("NewInternalClient", client.to_string()),
            ("NewEnabled", "1".into()),
            ("NewPortMappingDescription", "re6st-lite".into()),
            ("NewLeaseDuration", lease.to_string()),
        ],
    )
}

pub fn delete_mapping(service: &Service, external: u16) -> Vec<u8> {
    soap(
        service,
        "DeletePortMapping",
        &[
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external.to_string()),
            ("NewProtocol", "UDP".into()),
        ],
    )
}

pub fn external_address(service: &Service) -> Vec<u8> {
    soap(service, "GetExternalIPAddress", &[])
}

/// A SOAP answer: Ok(body) or the UPnP error code of a fault.
pub fn parse_soap(d: &[u8]) -> Result<&str, Option<u16>> {
    let (status, body) = parse_http(d).ok_or(None)?;
    if status == 200 {
        return Ok(body);
    }
    Err(element(body, "errorCode").and_then(|c| c.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from miniupnpd 2.3's answers.
    const SSDP: &[u8] = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
USN: uuid:00000000-0000-0000-0000-000000000000::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
EXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://192.0.2.1:5000/rootDesc.xml\r\n\r\n";

    const DESC: &str = "<?xml version=\"1.0\"?><root xmlns=\"urn:schemas-upnp-org:device-1-0\">\
<device><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>\
<controlURL>/ctl/L3F</controlURL></service></serviceList><deviceList><device><deviceList><device>\
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>\
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl/IPConn</controlURL>\
<eventSubURL>/evt/IPConn</eventSubURL><SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList>\
</device></deviceList></device></deviceList></device></root>";

    #[test]
    fn discovery_and_description() {
        let url = parse_ssdp(SSDP).unwrap();
        assert_eq!(
            url,
            Url {
                host: "192.0.2.1:5000".parse().unwrap(),
                path: "/rootDesc.xml".into()
            }
        );
        assert_eq!(
            get(&url),
            b"GET /rootDesc.xml HTTP/1.0\r\nHost: 192.0.2.1:5000\r\nContent-Length: 0\r\n\r\n"
        );
        let s = find_service(DESC, &url).unwrap();
        assert_eq!(s.kind, "urn:schemas-upnp-org:service:WANIPConnection:1");
        assert_eq!(s.control.path, "/ctl/IPConn");
        assert!(parse_ssdp(
            b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: http://192.0.2.1/\r\n\r\n"
        )
        .is_none());
        assert!(parse_ssdp(b"M-SEARCH * HTTP/1.1\r\n\r\n").is_none());
        assert!(Url::parse("https://192.0.2.1/").is_none());
        assert!(Url::parse("http://gateway.lan/").is_none());
    }

    #[test]
    fn soap_requests_and_answers() {
        let s = Service {
            kind: SERVICES[1],
            control: Url {
                host: "192.0.2.1:5000".parse().unwrap(),
                path: "/ctl/IPConn".into(),
            },
        };
        let req = String::from_utf8(add_mapping(
            &s,
            1194,
            1194,
            Ipv4Addr::new(192, 0, 2, 2),
            3600,
        ))
        .unwrap();
        let (head, body) = req.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /ctl/IPConn HTTP/1.0\r\n"), "{head}");
        assert!(head.contains(
            "\r\nSOAPAction: \"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\""
        ));
        assert_eq!(
            header(head, "Content-Length").unwrap(),
            body.len().to_string()
        );
        assert!(body.contains("<NewInternalClient>192.0.2.2</NewInternalClient>"));
        assert!(body.contains("<NewLeaseDuration>3600</NewLeaseDuration>"));

        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<?xml version=\"1.0\"?>\
<s:Envelope><s:Body><u:GetExternalIPAddressResponse xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\">\
<NewExternalIPAddress>203.0.113.1</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>";
        assert_eq!(
            parse_soap(ok).map(|b| element(b, "NewExternalIPAddress")),
            Ok(Some("203.0.113.1"))
        );
        let fault = b"HTTP/1.1 500 Internal Server Error\r\n\r\n<s:Envelope><s:Body><s:Fault>\
<faultcode>s:Client</faultcode><detail><UPnPError><errorCode>718</errorCode>\
<errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>";
        assert_eq!(parse_soap(fault), Err(Some(CONFLICT)));
        assert_eq!(parse_soap(b"junk"), Err(None));
    }
}
