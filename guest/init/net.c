/* net.c: the guest's network (see net.h). */
#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netpacket/packet.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "port.h"

#define IFACE_WAIT_MS 5000 /* how long to wait for a NIC to appear */

/* Finds the interface whose /sys/class/net/X/address is mac; writes its name to name. Returns 0, or -1. */
static int find_iface(const char *mac, char name[IFNAMSIZ])
{
	DIR *d = opendir("/sys/class/net");
	if (!d)
		return -1;
	int rc = -1;
	struct dirent *e;
	while (rc < 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= IFNAMSIZ)
			continue;
		char path[300], addr[64] = "";
		snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, addr, sizeof addr - 1);
		close(fd);
		if (n <= 0)
			continue;
		addr[n] = 0;
		addr[strcspn(addr, "\n")] = 0;
		if (strcasecmp(addr, mac) == 0) {
			memcpy(name, e->d_name, strlen(e->d_name) + 1); /* shorter than IFNAMSIZ, checked above */
			rc = 0;
		}
	}
	closedir(d);
	return rc;
}

/* A VM booted ahead of its container (a warm pool) has a NIC with the pool's MAC, not the container's: finds the
 * one interface (not lo) whose MAC no NET_IF record names and gives it `mac` (virtio-net tells QEMU, which then
 * filters for the new address). Writes its name to name. Returns 0, or -1 when there is no such interface. */
static int adopt_iface(int sock, const struct spec *spec, const char *mac, char name[IFNAMSIZ])
{
	DIR *d = opendir("/sys/class/net");
	if (!d)
		return -1;
	int rc = -1;
	struct dirent *e;
	while (rc < 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "lo") == 0 || strlen(e->d_name) >= IFNAMSIZ)
			continue;
		char path[300], addr[64] = "";
		snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, addr, sizeof addr - 1);
		close(fd);
		if (n <= 0)
			continue;
		addr[n] = 0;
		addr[strcspn(addr, "\n")] = 0;
		int named = 0;
		for (size_t i = 0; i < spec->nifs; i++)
			named |= strcasecmp(addr, spec->ifs[i].mac) == 0;
		if (named)
			continue;
		unsigned b[6];
		if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
			break;
		struct ifreq ifr = {0};
		strncpy(ifr.ifr_name, e->d_name, IFNAMSIZ - 1);
		ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
		for (int i = 0; i < 6; i++)
			ifr.ifr_hwaddr.sa_data[i] = (char)b[i];
		if (ioctl(sock, SIOCSIFHWADDR, &ifr) < 0) {
			log_msg("network: set the MAC of %s to %s: %s", e->d_name, mac, strerror(errno));
			break;
		}
		memcpy(name, e->d_name, strlen(e->d_name) + 1);
		rc = 0;
	}
	closedir(d);
	return rc;
}

/* Fills a sockaddr (as struct sockaddr_in) with an IPv4 address in network byte order. */
static void set_sin(struct sockaddr *sa, uint32_t addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = addr};
	memcpy(sa, &sin, sizeof sin);
}

/* Sets IFF_UP on the interface. */
static int iface_up(int sock, const char *name)
{
	struct ifreq ifr = {0};
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

/* True when `name` has its carrier (a virtio NIC gets it a few ms after it is first set up). */
static int iface_carrier(const char *name)
{
	char path[64], state[16] = "";
	snprintf(path, sizeof path, "/sys/class/net/%s/carrier", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, state, sizeof state - 1);
	close(fd);
	return n >= 1 && state[0] == '1';
}

/*
 * Sends one gratuitous ARP request for `addr` (network order) out of `name`, from its own MAC to broadcast, straight
 * to the driver: the interface's queue is attached only when the kernel's link watch gets to it, up to a second
 * after the carrier came (the kernel's own announcement at link-up is dropped there).
 */
static void send_gratuitous_arp(const char *name, uint32_t addr)
{
	/* One socket for the VM's life: closing a packet socket waits for an RCU grace period (synchronize_net), ~10 ms
	 * in a one-vCPU guest. Protocol 0: it sends, and receives nothing. */
	static int fd = -1;
	if (fd < 0) {
		fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return;
		int one = 1;
		if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
			log_msg("network: announce %s: PACKET_QDISC_BYPASS: %s", name, strerror(errno));
	}
	struct ifreq ifr = {0};
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0) {
		struct __attribute__((packed)) {
			uint16_t htype, ptype;
			uint8_t hlen, plen;
			uint16_t op;
			uint8_t sha[6], spa[4], tha[6], tpa[4];
		} arp = {htons(1), htons(ETH_P_IP), 6, 4, htons(1), {0}, {0}, {0}, {0}};
		memcpy(arp.sha, ifr.ifr_hwaddr.sa_data, 6);
		memcpy(arp.spa, &addr, 4);
		memcpy(arp.tpa, &addr, 4);
		struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_ifindex = (int)if_nametoindex(name), .sll_halen = 6};
		memset(to.sll_addr, 0xff, 6);
		if (sendto(fd, &arp, sizeof arp, 0, (struct sockaddr *)&to, sizeof to) < 0)
			log_msg("network: announce %s: %s", name, strerror(errno));
	}
}

/* How long the start waits for an interface's carrier before it announces it anyway. */
#define ANNOUNCE_WAIT_MS 1000

/*
 * Announces each configured interface's address (a gratuitous ARP) before the container's process starts: a
 * user-mode network (passt, rootless) learns where the guest is only from a frame the guest sent, and until then an
 * inbound connection to a published port goes nowhere (passt does not resend its SYN), so a server that never speaks
 * first would be unreachable. The kernel's own announcement (arp_notify) is sent when the interface is set up, often
 * before its carrier came, and then dropped: this one waits for the carrier (~10 ms after a cold boot's first
 * set-up; at most ANNOUNCE_WAIT_MS) and bypasses the queue the kernel attaches later.
 */
static void announce_when_up(const char names[][IFNAMSIZ], const uint32_t *addrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		long long deadline = now_ms() + ANNOUNCE_WAIT_MS;
		while (!iface_carrier(names[i]) && now_ms() < deadline)
			usleep(1000);
		if (!iface_carrier(names[i]))
			log_msg("network: %s has no carrier after %d ms; announcing it anyway", names[i], ANNOUNCE_WAIT_MS);
		send_gratuitous_arp(names[i], addrs[i]);
	}
}

void warm_network(void)
{
	char none[IFNAMSIZ];
	find_iface("00:00:00:00:00:00", none); /* the scan setup_network makes */
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	DIR *d = opendir("/sys/class/net");
	if (sock < 0 || !d) {
		if (sock >= 0)
			close(sock);
		if (d)
			closedir(d);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "lo") == 0 || strlen(e->d_name) >= IFNAMSIZ)
			continue;
		struct ifreq ifr = {0};
		strncpy(ifr.ifr_name, e->d_name, IFNAMSIZ - 1);
		if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0 || ioctl(sock, SIOCSIFHWADDR, &ifr) < 0 || iface_up(sock, e->d_name) < 0)
			continue;
		iface_carrier(e->d_name);
		send_gratuitous_arp(e->d_name, 0);
		if (ioctl(sock, SIOCGIFFLAGS, &ifr) == 0) {
			ifr.ifr_flags &= ~(IFF_UP | IFF_RUNNING);
			ioctl(sock, SIOCSIFFLAGS, &ifr);
		}
	}
	closedir(d);
	close(sock);
}

void setup_network(const struct spec *spec)
{
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		fail(R_INTERNAL, 125, "network: socket: %s", strerror(errno));
	if (iface_up(sock, "lo") < 0)
		log_msg("network: bring lo up: %s", strerror(errno));
	const struct net_if *gw_if = NULL;
	char gw_name[IFNAMSIZ] = "";
	char names[spec->nifs + 1][IFNAMSIZ];
	uint32_t addrs[spec->nifs + 1];
	size_t configured = 0;
	for (size_t i = 0; i < spec->nifs; i++) {
		const struct net_if *nif = &spec->ifs[i];
		char name[IFNAMSIZ];
		long long deadline = now_ms() + IFACE_WAIT_MS;
		while (find_iface(nif->mac, name) < 0 && adopt_iface(sock, spec, nif->mac, name) < 0) {
			if (now_ms() >= deadline)
				fail(R_INTERNAL, 125, "network: no interface with MAC %s", nif->mac);
			usleep(5000);
		}
		struct ifreq ifr = {0};
		memcpy(ifr.ifr_name, name, IFNAMSIZ);
		set_sin(&ifr.ifr_addr, nif->addr);
		if (ioctl(sock, SIOCSIFADDR, &ifr) < 0)
			fail(R_INTERNAL, 125, "network: set the address of %s: %s", name, strerror(errno));
		uint32_t mask = nif->prefix == 0 ? 0 : htonl(~0u << (32 - nif->prefix));
		set_sin(&ifr.ifr_netmask, mask);
		if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0)
			fail(R_INTERNAL, 125, "network: set the netmask of %s: %s", name, strerror(errno));
		ifr.ifr_mtu = nif->mtu;
		if (ioctl(sock, SIOCSIFMTU, &ifr) < 0)
			fail(R_INTERNAL, 125, "network: set the MTU of %s to %d: %s", name, nif->mtu, strerror(errno));
		if (iface_up(sock, name) < 0)
			fail(R_INTERNAL, 125, "network: bring %s up: %s", name, strerror(errno));
		memcpy(names[configured], name, IFNAMSIZ);
		addrs[configured++] = nif->addr;
		if (nif->has_gateway && !gw_if) {
			gw_if = nif;
			memcpy(gw_name, name, IFNAMSIZ);
		}
	}
	if (gw_if) {
		struct rtentry rt;
		memset(&rt, 0, sizeof rt);
		set_sin(&rt.rt_dst, 0);
		set_sin(&rt.rt_genmask, 0);
		set_sin(&rt.rt_gateway, gw_if->gateway);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = gw_name;
		if (ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST) {
			char gw[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &gw_if->gateway, gw, sizeof gw);
			fail(R_INTERNAL, 125, "network: default route via %s dev %s: %s", gw, gw_name, strerror(errno));
		}
	}
	close(sock);
	announce_when_up((const char(*)[IFNAMSIZ])names, addrs, configured);
}
