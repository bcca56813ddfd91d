//! Addressing: virtual-host style (`BUCKET.DOMAIN`, with `[s3] domain`)
//! and path style (`HOST/BUCKET/KEY`, always).
//!
//! Invariant: only a host under the configured domain names a bucket; any
//! other host (an IP address, `localhost`, the domain itself, a name the
//! appliance does not know) is path style, so a client's Host header never
//! turns into a bucket it did not put in the path.

use std::borrow::Cow;

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The configured domain, lowercase, without a port.
pub(crate) struct Host {
    domain: Option<String>,
}

impl Host {
    pub(crate) fn new(domain: Option<String>) -> Host {
        Host { domain: domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase()) }
    }

    /// The bucket `host` names, if it is `BUCKET.DOMAIN` (any port).
    fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let domain = self.domain.as_deref()?;
        let name = strip_port(host);
        let cut = name.len().checked_sub(domain.len() + 1)?;
        let (bucket, rest) = (name.get(..cut)?, name.get(cut..)?);
        let under = rest.starts_with('.') && rest[1..].eq_ignore_ascii_case(domain);
        (under && !bucket.is_empty()).then_some(bucket)
    }
}

impl S3Host for Host {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(Cow::Borrowed(host)).with_bucket(Cow::Owned(bucket.to_ascii_lowercase())),
            None => VirtualHost::new(Cow::Borrowed(host)),
        })
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal: never a bucket's host.
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hosts_under_the_domain_name_a_bucket() {
        let host = Host::new(Some("S3.Example.Internal".into()));
        assert_eq!(host.bucket_of("records.s3.example.internal"), Some("records"));
        assert_eq!(host.bucket_of("records.s3.example.internal:7880"), Some("records"));
        assert_eq!(host.bucket_of("a.b.s3.example.internal"), Some("a.b"));
        assert_eq!(host.bucket_of("s3.example.internal"), None);
        assert_eq!(host.bucket_of(".s3.example.internal"), None);
        assert_eq!(host.bucket_of("records.evil-s3.example.internal"), None);
        assert_eq!(host.bucket_of("localhost:7880"), None);
        assert_eq!(Host::new(None).bucket_of("records.s3.example.internal"), None);
    }
}
