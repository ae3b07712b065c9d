/* net.h: the guest's network from the SPEC's NET_IF records (ioctls, no netlink): loopback, addresses, MTU, the
 * default route. */
#ifndef BOSON_NET_H
#define BOSON_NET_H

#include "proto.h"

/* Brings lo up, then configures every NET_IF interface (found by MAC) and the default route through the first
 * gateway. Reports INTERNAL on failure. */
void setup_network(const struct spec *spec);

/* In a VM booted ahead of its container (a warm pool's): runs each NIC's set-up paths once, as setup_network will
 * (its MAC set, up, one ARP probe from 0.0.0.0, down again), so that under TCG the SPEC's network set-up runs code
 * translated already (~20 ms otherwise). The host's end of a spare tap is down: the probe goes nowhere. */
void warm_network(void);

#endif
