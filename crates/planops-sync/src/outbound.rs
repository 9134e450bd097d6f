//! Which addresses PlanOps may send HTTP requests to when a resource names the
//! URL: supplier poll endpoints and notify webhooks.
//!
//! Whoever can write a SupplierConnector or a notify URL Secret chooses where
//! the operator connects, with the operator's network position. So requests
//! never go to loopback, link-local (the cloud metadata address among them),
//! unspecified addresses or the cluster's service ranges given with
//! `--service-cidr`, unless `--allow-outbound` lists the address.
//!
//! The check runs on every address a host name resolves to, at connection
//! time, inside the client's DNS resolver ([`client`]), so a name that resolves
//! to a public address when the spec is checked and to an internal one when
//! the request is made (DNS rebinding) is still refused. Literal IP addresses
//! never reach a resolver: [`OutboundPolicy::check_url`] checks them before
//! the request is sent.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The command-line flag that lists allowed outbound addresses.
pub const ALLOW_FLAG: &str = "--allow-outbound";
/// Its environment variable (the Helm chart and the CronJobs set it).
pub const ALLOW_ENV: &str = "PLANOPS_ALLOW_OUTBOUND";
/// The environment variable of `--service-cidr`.
pub const SERVICE_CIDR_ENV: &str = "PLANOPS_SERVICE_CIDR";

/// An IPv4 or IPv6 network, `10.96.0.0/12` or `fd00::/108`; a bare address
/// is the network of that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR (such as 10.96.0.0/12 or fd00::/108)")]
pub struct CidrError(String);

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        Cidr {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
        let [a, b, c, d, e, f, g, h] = segments;
        Cidr {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// Whether `ip` is in this network (IPv4 in IPv4 networks, IPv6 in IPv6).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(network: u128, ip: u128, width: u8, prefix: u8) -> bool {
    let host_bits = u32::from(width - prefix.min(width));
    network.checked_shr(host_bits).unwrap_or(0) == ip.checked_shr(host_bits).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(text.to_string());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| err())?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(err)?,
            None => width,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    Loopback,
    LinkLocal,
    Unspecified,
    /// A cloud metadata endpoint outside link-local (AWS's IPv6 one).
    Metadata,
    /// One of the `--service-cidr` networks.
    ServiceCidr(Cidr),
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocked::Loopback => f.write_str("a loopback address"),
            Blocked::LinkLocal => f.write_str("a link-local address (cloud metadata lives there)"),
            Blocked::Unspecified => f.write_str("an unspecified address"),
            Blocked::Metadata => f.write_str("a cloud metadata address"),
            Blocked::ServiceCidr(cidr) => write!(f, "in the cluster service range {cidr}"),
        }
    }
}

/// Networks refused whatever the configuration, unless allowed.
const ALWAYS_BLOCKED: [(Cidr, Blocked); 8] = [
    (Cidr::v4(127, 0, 0, 0, 8), Blocked::Loopback),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Blocked::Loopback),
    (Cidr::v4(169, 254, 0, 0, 16), Blocked::LinkLocal),
    (
        Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        Blocked::LinkLocal,
    ),
    // "This network": Linux connects 0.0.0.0 to the local host.
    (Cidr::v4(0, 0, 0, 0, 8), Blocked::Unspecified),
    (
        Cidr::v6([0, 0, 0, 0, 0, 0, 0, 0], 128),
        Blocked::Unspecified,
    ),
    (
        Cidr::v6([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254], 128),
        Blocked::Metadata,
    ),
    // Alibaba Cloud's metadata service.
    (Cidr::v4(100, 100, 100, 200, 32), Blocked::Metadata),
];

/// An address refused for a URL's host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "outbound request to {host} refused: {address} is {why}; list it in {ALLOW_FLAG} ({ALLOW_ENV}, Helm value outbound.allow) to permit it"
)]
pub struct OutboundDenied {
    /// The URL's host, never the rest of the URL (which may carry a token).
    pub host: String,
    pub address: IpAddr,
    pub why: Blocked,
}

/// Where outbound requests may go: everything but the blocked networks and
/// `service_cidrs`, plus whatever `allow` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    pub service_cidrs: Vec<Cidr>,
    pub allow: Vec<Cidr>,
}

impl OutboundPolicy {
    /// Why `ip` is refused, or `None` when requests may go there.
    pub fn blocked(&self, ip: IpAddr) -> Option<Blocked> {
        // `::ffff:127.0.0.1` reaches 127.0.0.1.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.allow.iter().any(|c| c.contains(ip)) {
            return None;
        }
        ALWAYS_BLOCKED
            .iter()
            .find(|(cidr, _)| cidr.contains(ip))
            .map(|(_, why)| *why)
            .or_else(|| {
                self.service_cidrs
                    .iter()
                    .find(|c| c.contains(ip))
                    .map(|c| Blocked::ServiceCidr(*c))
            })
    }

    /// Refuses a URL whose host is a blocked literal IP address. Host names
    /// are checked when they resolve (see [`client`]).
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundDenied> {
        // The URL parser has already turned every IPv4 spelling (`0x7f.1`,
        // `2130706433`) into dotted decimal, and brackets IPv6.
        let host = url.host_str().unwrap_or_default();
        let Ok(address) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        match self.blocked(address) {
            Some(why) => Err(OutboundDenied {
                host: host.to_string(),
                address,
                why,
            }),
            None => Ok(()),
        }
    }

    /// The environment that gives a `planops` process this policy.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let join = |cidrs: &[Cidr]| {
            cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut env = Vec::new();
        if !self.allow.is_empty() {
            env.push((ALLOW_ENV, join(&self.allow)));
        }
        if !self.service_cidrs.is_empty() {
            env.push((SERVICE_CIDR_ENV, join(&self.service_cidrs)));
        }
        env
    }
}

static PROCESS_POLICY: OnceLock<OutboundPolicy> = OnceLock::new();

/// Sets the policy of this process (from its flags, once at start). The first
/// call wins; a later one gets its policy back.
pub fn install(policy: OutboundPolicy) -> Result<(), OutboundPolicy> {
    PROCESS_POLICY.set(policy)
}

/// The policy [`install`]ed, else the strictest one (nothing allowed, no
/// service ranges known).
pub fn policy() -> &'static OutboundPolicy {
    static DEFAULT: OutboundPolicy = OutboundPolicy {
        service_cidrs: Vec::new(),
        allow: Vec::new(),
    };
    PROCESS_POLICY.get().unwrap_or(&DEFAULT)
}

/// Which redirects a client follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// None: a 3xx is the answer.
    None,
    /// Only to the same scheme, host and port, at most a few times. Custom
    /// credential headers (`X-Api-Key`) are sent again on a redirect, and
    /// reqwest strips only the standard ones when the host changes, so a
    /// client carrying credentials must never leave the origin.
    SameOrigin,
}

const MAX_REDIRECTS: usize = 5;

/// A client whose connections obey `policy`.
pub fn client(
    policy: &OutboundPolicy,
    timeout: Duration,
    redirects: Redirects,
) -> Result<reqwest::Client, reqwest::Error> {
    let redirect = match redirects {
        Redirects::None => reqwest::redirect::Policy::none(),
        Redirects::SameOrigin => reqwest::redirect::Policy::custom(|attempt| {
            let same = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !same {
                attempt.stop()
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }),
    };
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(redirect)
        .dns_resolver(Arc::new(GuardedResolver {
            policy: policy.clone(),
        }))
        .build()
}

/// The refusal inside a failed request's error chain, if that is why it failed.
pub fn denial<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a OutboundDenied> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(denied) = err.downcast_ref::<OutboundDenied>() {
            return Some(denied);
        }
        current = err.source();
    }
    None
}

/// The system resolver, keeping only the addresses the policy allows.
struct GuardedResolver {
    policy: OutboundPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.blocked(addr.ip()) {
                    Some(why) => {
                        first_refusal.get_or_insert((addr.ip(), why));
                        false
                    }
                    None => true,
                })
                .collect();
            match (allowed.is_empty(), first_refusal) {
                (true, Some((address, why))) => {
                    Err(Box::new(OutboundDenied { host, address, why })
                        as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let net: Cidr = "10.96.0.0/12".parse().unwrap();
        assert!(net.contains(ip("10.96.0.1")));
        assert!(net.contains(ip("10.111.255.255")));
        assert!(!net.contains(ip("10.112.0.0")));
        assert!(!net.contains(ip("::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        assert!(
            "fd00::/108"
                .parse::<Cidr>()
                .unwrap()
                .contains(ip("fd00::1"))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_policy_refuses_internal_addresses() {
        let policy = OutboundPolicy::default();
        for (address, why) in [
            ("127.0.0.1", Blocked::Loopback),
            ("127.1.2.3", Blocked::Loopback),
            ("::1", Blocked::Loopback),
            ("::ffff:127.0.0.1", Blocked::Loopback),
            ("169.254.169.254", Blocked::LinkLocal),
            ("fe80::1", Blocked::LinkLocal),
            ("0.0.0.0", Blocked::Unspecified),
            ("::", Blocked::Unspecified),
            ("fd00:ec2::254", Blocked::Metadata),
        ] {
            assert_eq!(policy.blocked(ip(address)), Some(why), "{address}");
        }
        for public in ["203.0.113.9", "10.96.0.1", "2001:db8::1", "192.168.1.1"] {
            assert_eq!(policy.blocked(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn service_ranges_are_refused_and_allow_wins() {
        let policy = OutboundPolicy {
            service_cidrs: cidrs(&["10.96.0.0/12"]),
            allow: cidrs(&["127.0.0.0/8", "10.96.0.10"]),
        };
        assert_eq!(
            policy.blocked(ip("10.96.3.4")),
            Some(Blocked::ServiceCidr("10.96.0.0/12".parse().unwrap()))
        );
        assert_eq!(policy.blocked(ip("10.96.0.10")), None);
        assert_eq!(policy.blocked(ip("127.0.0.1")), None);
        assert_eq!(policy.blocked(ip("::1")), Some(Blocked::Loopback));
    }

    #[test]
    fn literal_addresses_in_urls_are_checked_and_the_error_names_the_host_only() {
        let policy = OutboundPolicy::default();
        let url = Url::parse("http://169.254.169.254/latest/meta-data?token=s3cr3t").unwrap();
        let err = policy.check_url(&url).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("169.254.169.254"), "{text}");
        assert!(text.contains(ALLOW_FLAG), "{text}");
        assert!(
            !text.contains("s3cr3t") && !text.contains("meta-data"),
            "{text}"
        );
        assert!(
            policy
                .check_url(&Url::parse("http://[::ffff:7f00:1]:8080/").unwrap())
                .is_err()
        );
        // Names are left to the resolver.
        assert!(
            policy
                .check_url(&Url::parse("http://localhost/").unwrap())
                .is_ok()
        );
        assert!(
            policy
                .check_url(&Url::parse("https://203.0.113.5/").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn env_round_trips_the_lists() {
        let policy = OutboundPolicy {
            service_cidrs: cidrs(&["10.96.0.0/12", "fd00::/108"]),
            allow: cidrs(&["127.0.0.1"]),
        };
        assert_eq!(
            policy.env(),
            [
                (ALLOW_ENV, "127.0.0.1/32".to_string()),
                (SERVICE_CIDR_ENV, "10.96.0.0/12,fd00::/108".to_string()),
            ]
        );
        assert!(OutboundPolicy::default().env().is_empty());
    }

    /// A server that counts connections and answers 200 to each.
    async fn counting_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            }
        });
        (port, count)
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_never_connect() {
        use std::sync::atomic::Ordering;
        let (port, count) = counting_server().await;
        let url = format!("http://localhost:{port}/");
        let strict = client(
            &OutboundPolicy::default(),
            Duration::from_secs(5),
            Redirects::None,
        )
        .unwrap();
        let err = strict.get(&url).send().await.unwrap_err();
        let denied = denial(&err).expect("the refusal is in the error chain");
        assert_eq!(denied.host, "localhost");
        assert_eq!(denied.why, Blocked::Loopback);
        assert_eq!(count.load(Ordering::SeqCst), 0);

        let allowing = OutboundPolicy {
            allow: cidrs(&["127.0.0.0/8", "::1"]),
            ..OutboundPolicy::default()
        };
        let open = client(&allowing, Duration::from_secs(5), Redirects::None).unwrap();
        let response = open.get(&url).send().await.unwrap();
        assert!(response.status().is_success());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}
