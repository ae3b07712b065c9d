/* port.c: the control channel to the host (see port.h and docs/guest-protocol.md). */
#define _GNU_SOURCE
#include "port.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include "root.h"

#define PORT_NAME "boson.ctl"
#define LINGER_MS 10000 /* how long to wait after EXIT for the host to close the port */

static int port = -1;                     /* the boson.ctl port, or -1 before it is open */
static uint8_t *rbuf;                     /* bytes read from the port: rbuf[rpos .. rlen) unconsumed */
static size_t rpos, rlen;
static uint8_t obuf[FRAME_HDR + CHUNK];   /* one outgoing frame */

/* Syncs and powers the VM off; never returns. Falls back to a reboot, which QEMU -no-reboot turns into exit. */
_Noreturn void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

/* Milliseconds on the monotonic clock. */
long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the port is ready for events (POLLIN or POLLOUT); powers off if the host has closed it. */
void port_wait(short events)
{
	struct pollfd pfd = {.fd = port, .events = events};
	for (;;) {
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			dprintf(2, "boson-init: poll port: %s\n", strerror(errno));
			power_off();
		}
		if (pfd.revents & events)
			return;
		if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
			dprintf(2, "boson-init: the host closed the port\n");
			power_off();
		}
	}
}

/* Writes all n bytes to the port, looping over partial writes (the driver takes at most 32 KiB per write) and
 * waiting while the host is not reading; powers off if the port is gone. */
static void port_write(const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(port, b, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				port_wait(POLLOUT);
				continue;
			}
			dprintf(2, "boson-init: port write: %s\n", strerror(errno));
			power_off();
		}
		b += w;
		n -= (size_t)w;
	}
}

/* The payload part of the outgoing frame buffer. */
uint8_t *payload_buffer(void)
{
	return obuf + FRAME_HDR;
}

/* The port's fd. */
int port_fd(void)
{
	return port;
}

/* Sends the frame whose payload (n bytes) is already in obuf after the header space. */
void send_payload(uint8_t type, size_t n)
{
	frame_hdr_encode(obuf, type, 0, (uint32_t)n);
	port_write(obuf, FRAME_HDR + n);
}

/* Sends one frame of session 0 with a payload of at most CHUNK bytes. */
void send_frame(uint8_t type, const void *payload, size_t n)
{
	if (n > CHUNK)
		n = CHUNK;
	memcpy(obuf + FRAME_HDR, payload, n);
	send_payload(type, n);
}

/* Logs a diagnostic line on the console and, once the port is open, as a LOG frame. */
void log_msg(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dprintf(2, "boson-init: %s\n", msg);
	if (port >= 0)
		send_frame(T_LOG, msg, strlen(msg));
}

/* Sends EXIT(status, signo). */
void send_exit(int status, uint32_t signo)
{
	uint8_t p[8];
	put_u32(p, (uint32_t)status);
	put_u32(p + 4, signo);
	send_frame(T_EXIT, p, sizeof p);
}

/* After EXIT: waits until the host closes its end of the port, or LINGER_MS pass, discarding anything it sends.
 * QEMU drops output still queued in the virtio ring when the VM powers off, and the guest cannot see when that
 * ring is drained; the host closing the port after reading EXIT (which comes last) is the signal. */
void linger(void)
{
	long long deadline = now_ms() + LINGER_MS;
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return;
		struct pollfd pfd = {.fd = port, .events = POLLIN};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (pfd.revents & (POLLHUP | POLLERR)))
			return;
		ssize_t n = read(port, rbuf, FRAME_HDR + FRAME_MAX);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return;
	}
}

/* Reports a start failure as ERROR(reason, message) + EXIT(status), then powers off. */
_Noreturn void fail(int reason, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg + 1, sizeof msg - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof msg - 2)
		n = sizeof msg - 2;
	dprintf(2, "boson-init: error %d: %s\n", reason, msg + 1);
	if (port >= 0) {
		msg[0] = (char)reason;
		send_frame(T_ERROR, msg, (size_t)n + 1);
		send_exit(status, 0);
		linger();
	}
	power_off();
}

/* Opens the boson.ctl port and sends HELLO; powers off if the port never appears. */
void open_port(void)
{
	char dev[300];
	if (wait_device("/sys/class/virtio-ports", "vport", "name", PORT_NAME, dev, sizeof dev) < 0) {
		dprintf(2, "boson-init: no virtio-serial port named %s\n", PORT_NAME);
		power_off();
	}
	port = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (port < 0) {
		dprintf(2, "boson-init: open %s: %s\n", dev, strerror(errno));
		power_off();
	}
	rbuf = malloc(FRAME_HDR + FRAME_MAX);
	if (!rbuf)
		power_off();
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	uint8_t hello[12];
	put_u32(hello, PROTO_VERSION);
	put_u64(hello + 4, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
	send_frame(T_HELLO, hello, sizeof hello);
	/* The HELLO write blocked until the host was connected. From now on the port is non-blocking: a blocking
	 * write would wait forever for a host that has gone, where poll() reports the hang-up. */
	fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_NONBLOCK);
}

/* Reads what the port has into rbuf (nothing if it has nothing ready); powers off when the host has closed it. */
void port_fill(void)
{
	if (rpos > 0) {
		memmove(rbuf, rbuf + rpos, rlen - rpos);
		rlen -= rpos;
		rpos = 0;
	}
	ssize_t n;
	do
		n = read(port, rbuf + rlen, FRAME_HDR + FRAME_MAX - rlen);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		dprintf(2, "boson-init: port closed (%s)\n", n == 0 ? "EOF" : strerror(errno));
		power_off();
	}
	rlen += (size_t)n;
}

/* If a complete frame is at the front of the unconsumed bytes, decodes its header into h and returns its
 * payload, else NULL. A frame longer than FRAME_MAX is fatal. */
const uint8_t *next_frame(struct frame_hdr *h)
{
	if (rlen - rpos < FRAME_HDR)
		return NULL;
	if (frame_hdr_decode(rbuf + rpos, h) < 0)
		fail(R_INTERNAL, 125, "protocol error: frame of %u bytes from the host", h->len);
	return rlen - rpos >= FRAME_HDR + h->len ? rbuf + rpos + FRAME_HDR : NULL;
}

/* Drops the frame with header h from the front of the unconsumed bytes. */
void consume_frame(const struct frame_hdr *h)
{
	rpos += FRAME_HDR + h->len;
}

/* Waits for the SPEC frame (ignoring anything else) and parses it; reports SPEC_INVALID on failure. */
void read_spec(struct spec *spec)
{
	for (;;) {
		struct frame_hdr h;
		const uint8_t *payload;
		while ((payload = next_frame(&h))) {
			if (h.type == T_SPEC && h.session == 0) {
				char err[512];
				int rc = spec_parse(payload, h.len, spec, err, sizeof err);
				consume_frame(&h);
				if (rc < 0)
					fail(R_SPEC_INVALID, 125, "invalid SPEC: %s", err);
				return;
			}
			consume_frame(&h);
		}
		port_wait(POLLIN);
		port_fill();
	}
}

