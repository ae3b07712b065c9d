/**
 * The firewall as a pure function of the network state: one nftables table of Boson's own (`ip <prefix>`), always
 * replaced whole in one transaction. Nothing outside that table is touched, so removing it removes every rule we
 * ever added, and a daemon that restarts simply renders the table again from its state.
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

/** The nft script that makes table `ip <table>` exactly this (created if missing, replaced atomically if present). */
export function renderRuleset(table: string, networks: FirewallNetwork[], ports: FirewallPort[]): string {
  const dnat = ports.map((p) => {
    const dst = p.hostIp === '0.0.0.0' ? '' : `ip daddr ${p.hostIp} `;
    return `    ${dst}${p.protocol} dport ${p.hostPort} dnat to ${p.address}:${p.containerPort}`;
  });
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
  return [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    '  chain ports {',
    ...dnat,
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    fib daddr type local jump ports',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    fib daddr type local jump ports',
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
    '',
  ].join('\n');
}

/** The nft script that removes table `ip <table>` whether or not it exists. */
export function renderRemoval(table: string): string {
  return `table ip ${table}\ndelete table ip ${table}\n`;
}
