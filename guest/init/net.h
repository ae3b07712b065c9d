/* net.h: the guest's network from the SPEC's NET_IF records (ioctls, no netlink): loopback, addresses, MTU, the
 * default route. */
#ifndef BOSON_NET_H
#define BOSON_NET_H

#include "proto.h"

/* Brings lo up, then configures every NET_IF interface (found by MAC) and the default route through the first
 * gateway. Reports INTERNAL on failure. */
void setup_network(const struct spec *spec);

#endif
