//! proxy_pass with variables: the URL evaluated for one request into the
//! target a static proxy_pass has from the start, by nginx's rules: a host
//! without a port naming an `upstream {}` block goes to it, a unix socket
//! or an IPv4 address is used as is, any other name is resolved through
//! the location's `resolver`.

use std::net::SocketAddr;

use crate::conf::proxy::{strip_scheme, PassUrl, PassVars, ProxyPass};
use crate::conf::upstream::PeerAddr;
use crate::dns;
use crate::request::RequestCtx;

use super::{request, Failure};

/// The target `vars`'s URL names for this request.
pub async fn evaluate(ctx: &mut RequestCtx<'_>, vars: &std::sync::Arc<PassVars>) -> Result<ProxyPass, Failure> {
    let url = request::render(ctx, &vars.template).into_owned();
    let rest = strip_scheme(&url).map_err(Failure::internal)?;
    let parts = PassUrl::parse(rest).map_err(|e| Failure::internal(format!("{e} in upstream \"{rest}\"")))?;
    // nginx gives a URI part of only `?args` its `/`.
    let uri = parts.uri.map(|u| if u.starts_with('?') { format!("/{u}") } else { u.to_string() });
    let mut pass = ProxyPass { url: url.clone(), host: parts.proxy_host(), addrs: Vec::new(), uri, upstream: None, vars: Some(vars.clone()) };
    if let Some(u) = parts.block(&vars.upstreams) {
        pass.upstream = Some(u.clone());
        return Ok(pass);
    }
    let port = parts.port.unwrap_or(80);
    if let Some(a) = parts.literal_addr() {
        pass.addrs.push(a);
        return Ok(pass);
    }
    // nginx's resolver knows no /etc/hosts: without one, every name fails.
    let resolver = ctx.conf.resolver.clone().filter(|r| !r.servers.is_empty());
    let Some(resolver) = resolver else {
        return Err(Failure::bad_gateway(format!("no resolver defined to resolve {}", parts.host)));
    };
    let ips = dns::resolve(Some(&resolver), parts.host).await.map_err(|e| Failure::bad_gateway(e.to_string()))?;
    pass.addrs = ips.into_iter().map(|ip| PeerAddr::Inet(SocketAddr::new(ip, port))).collect();
    Ok(pass)
}
