/**
 * The firewall as a pure function of the network state: nftables tables of Boson's own (`ip <prefix>` for NAT,
 * forwarding and loopback protection; `bridge <prefix>` for anti-spoofing on each container's tap), always replaced
 * whole in one transaction. Nothing outside those tables is touched, so removing them removes every rule we ever
 * added, and a daemon that restarts simply renders them again from its state.
 *
 * What a container cannot do here: reach a service bound to the host's loopback (bridges need route_localnet for
 * ports published on 127.0.0.1, so packets for 127.0.0.0/8, or from it, arriving on a bridge are dropped before
 * anything else sees them: the CVE-2020-8558 pattern); reach a port published on a loopback address (those are
 * DNATed for the host's own connections only, never for packets arriving from outside, so no LAN host reaches them
 * either); send from a MAC or IPv4 address that is not its own, or anything but IPv4 and ARP.
 */

/** What the firewall needs to know about a network. */
export interface FirewallNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
}

/** One published port: traffic to hostIp:hostPort (any local address for 0.0.0.0) goes to address:containerPort. */
export interface FirewallPort {
  hostIp: string;
  hostPort: number;
  protocol: 'tcp' | 'udp';
  address: string;
  containerPort: number;
}

function q(name: string): string {
  return `"${name}"`;
}

/** A container's tap on a bridge: what it may send from. */
export interface FirewallTap {
  tap: string;
  mac: string;
  address: string;
}

/** True for a host address in 127.0.0.0/8. */
function isLoopbackIp(ip: string): boolean {
  return /^127\./.test(ip);
}

/** The nft script that makes tables `ip <table>` and `bridge <table>` exactly this (created or replaced atomically). */
export function renderRuleset(table: string, networks: FirewallNetwork[], ports: FirewallPort[], taps: FirewallTap[] = []): string {
  const rule = (p: FirewallPort): string => {
    const dst = p.hostIp === '0.0.0.0' ? '' : `ip daddr ${p.hostIp} `;
    return `    ${dst}${p.protocol} dport ${p.hostPort} dnat to ${p.address}:${p.containerPort}`;
  };
  // Ports published on a loopback address are for the host's own connections only (the output hook).
  const dnat = ports.filter((p) => !isLoopbackIp(p.hostIp)).map(rule);
  const localDnat = ports.filter((p) => isLoopbackIp(p.hostIp)).map(rule);
  const bridges = networks.map((n) => q(n.bridge));
  const post: string[] = [];
  const internal: string[] = [];
  const isolation: string[] = [];
  for (const n of networks) {
    const br = q(n.bridge);
    if (n.internal) {
      // An internal network reaches nothing but itself.
      internal.push(`    iifname ${br} oifname != ${br} drop`, `    oifname ${br} iifname != ${br} drop`);
      continue;
    }
    // Outbound NAT for the network's own traffic leaving through any other interface.
    post.push(`    ip saddr ${n.subnet} oifname != ${br} masquerade`);
    // Published ports reached from the host's 127.0.0.1 (needs route_localnet on the bridge) and from a container
    // of the same network through a host address (hairpin): the container must answer through the host.
    post.push(`    oifname ${br} ip saddr 127.0.0.0/8 masquerade`, `    oifname ${br} ct status dnat ip saddr ${n.subnet} masquerade`);
    const others = networks.filter((o) => o.bridge !== n.bridge).map((o) => q(o.bridge));
    // Isolation: no forwarding from one Boson network into another.
    if (others.length > 0) isolation.push(`    iifname ${br} oifname { ${others.join(', ')} } drop`);
  }
  const spoofing = taps.flatMap((t) => [
    `    iifname ${q(t.tap)} ether saddr != ${t.mac} drop`,
    `    iifname ${q(t.tap)} ether type != { ip, arp } drop`,
    `    iifname ${q(t.tap)} ether type ip ip saddr != ${t.address} drop`,
    `    iifname ${q(t.tap)} ether type arp arp saddr ip != ${t.address} drop`,
    `    iifname ${q(t.tap)} ether type arp arp saddr ether != ${t.mac} drop`,
  ]);
  return [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table bridge ${table}`,
    `delete table bridge ${table}`,
    `table ip ${table} {`,
    '  chain loopback {',
    '    type filter hook prerouting priority raw; policy accept;',
    ...(bridges.length > 0
      ? [
          `    iifname { ${bridges.join(', ')} } ip daddr 127.0.0.0/8 drop`,
          `    iifname { ${bridges.join(', ')} } ip saddr 127.0.0.0/8 drop`,
        ]
      : []),
    '  }',
    '  chain ports {',
    ...dnat,
    '  }',
    '  chain localports {',
    ...dnat,
    ...localDnat,
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    fib daddr type local jump ports',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    fib daddr type local jump localports',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...post,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    ...internal,
    // A published port is public: reachable from other hosts, and so also from other networks through the host.
    '    ct status dnat accept',
    ...isolation,
    '  }',
    '}',
    `table bridge ${table} {`,
    '  chain spoofing {',
    '    type filter hook prerouting priority filter; policy accept;',
    ...spoofing,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The nft script that removes tables `ip <table>` and `bridge <table>` whether or not they exist. */
export function renderRemoval(table: string): string {
  return `table ip ${table}\ndelete table ip ${table}\ntable bridge ${table}\ndelete table bridge ${table}\n`;
}
