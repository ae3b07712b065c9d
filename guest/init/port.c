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
#define LOG_PORT_NAME "boson.log"
#define LINGER_MS 10000          /* how long to wait after EXIT for the host to close the port */
#define QUEUE_HIGH (256u << 10)  /* stop reading sources bound for boson.ctl while this much is queued */
#define QUEUE_CAP (8u << 20)     /* with no host connected, drop output frames beyond this much queued */
#define RECONNECT_POLL_MS 100    /* how often to look for a host while none is connected */

static int port = -1;                     /* the boson.ctl port, or -1 before it is open */
static int log_port = -1;                 /* the boson.log port, or -1 */
static int reconnectable;                 /* LOG_PORT: a closed host side is not the end */
static int connected = 1;                 /* a host is connected to boson.ctl */
static uint8_t *rbuf;                     /* bytes read from the port: rbuf[rpos .. rlen) unconsumed */
static size_t rpos, rlen;
static uint8_t *queue;                    /* frames for boson.ctl: queue[qhead .. qtail) */
static size_t qhead, qtail, qcap;
static size_t head_left;                  /* bytes of the frame at qhead not yet written (0: at a boundary) */
static unsigned long long dropped;        /* output bytes dropped while no host was connected */
static uint8_t lbuf[FRAME_HDR + 8 + CHUNK + 16]; /* one log-port record */

/* Syncs and ends the VM; never returns. With ACPI the machine powers off; without (Boson's own kernel), a power
 * off would only halt the CPU, so it resets instead, which QEMU's -no-reboot turns into exit (the host passes
 * reboot=t so that the reset is an immediate triple fault). */
_Noreturn void power_off(void)
{
	sync();
	if (access("/sys/firmware/acpi", F_OK) == 0)
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

/* The port's fd. */
int port_fd(void)
{
	return port;
}

void set_reconnectable(void)
{
	reconnectable = 1;
}

int ctl_connected(void)
{
	return connected;
}

/* ---------------------------------------------------------------- the boson.ctl queue */

static size_t queued(void)
{
	return qtail - qhead;
}

int ctl_accepts_output(void)
{
	return !connected || queued() < QUEUE_HIGH;
}

/* Marks n bytes at the head of the queue as written, keeping track of frame boundaries. */
static void queue_advance(size_t n)
{
	while (n > 0) {
		if (head_left == 0)
			head_left = FRAME_HDR + get_u32(queue + qhead + 4);
		size_t take = n < head_left ? n : head_left;
		qhead += take;
		head_left -= take;
		n -= take;
	}
	if (qhead == qtail) {
		qhead = qtail = 0;
		if (qcap > (1u << 20)) { /* give back what a burst took */
			free(queue);
			queue = NULL;
			qcap = 0;
		}
	}
}

/* The host side of the port has closed: powers off, or (reconnectable) forgets the half-written frame (QEMU
 * discarded what the old host did not read, so the next host must start at a frame boundary). */
static void host_gone(const char *why)
{
	if (!reconnectable) {
		dprintf(2, "boson-init: the host closed the port (%s)\n", why);
		power_off();
	}
	if (!connected)
		return;
	dprintf(2, "boson-init: the host closed the port (%s); waiting for it to come back\n", why);
	connected = 0;
	if (head_left > 0)
		queue_advance(head_left);
}

/* Writes queued frames until the port would block. */
static void ctl_flush(void)
{
	while (connected && queued() > 0) {
		ssize_t w = write(port, queue + qhead, queued());
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				host_gone(strerror(errno));
			return;
		}
		queue_advance((size_t)w);
	}
}

void ctl_send(uint8_t type, uint16_t session, const void *payload, size_t n)
{
	if (port < 0)
		return;
	if (!connected && (type == T_STDOUT || type == T_STDERR) && queued() + FRAME_HDR + n > QUEUE_CAP) {
		dropped += n;
		return;
	}
	size_t need = FRAME_HDR + n;
	if (qtail + need > qcap) {
		if (qhead > 0) {
			memmove(queue, queue + qhead, queued());
			qtail -= qhead;
			qhead = 0;
		}
		if (qtail + need > qcap) {
			size_t cap = (qtail + need) * 2;
			if (cap < 65536)
				cap = 65536;
			uint8_t *nq = realloc(queue, cap);
			if (!nq) {
				dprintf(2, "boson-init: out of memory queueing a frame of %zu bytes; dropped\n", n);
				return;
			}
			queue = nq;
			qcap = cap;
		}
	}
	frame_hdr_encode(queue + qtail, type, session, (uint32_t)n);
	if (n)
		memcpy(queue + qtail + FRAME_HDR, payload, n);
	qtail += need;
}

void ctl_drain(void)
{
	while (connected && queued() > 0) {
		ctl_flush();
		if (!connected || queued() == 0)
			return;
		struct pollfd pfd = {.fd = port, .events = POLLOUT};
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			dprintf(2, "boson-init: poll port: %s\n", strerror(errno));
			power_off();
		}
		if (!(pfd.revents & POLLOUT) && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
			host_gone("hang-up");
	}
}

short port_events(int want_input)
{
	if (!connected)
		return 0;
	return (short)((want_input ? POLLIN : 0) | (queued() > 0 ? POLLOUT : 0));
}

/* Reads once from the port into rbuf (nothing if it has nothing ready); notices a closed host side. */
static void port_fill(void)
{
	if (rpos > 0) {
		memmove(rbuf, rbuf + rpos, rlen - rpos);
		rlen -= rpos;
		rpos = 0;
	}
	if (rlen == FRAME_HDR + FRAME_MAX)
		return; /* full: the caller consumes a frame first */
	ssize_t n;
	do
		n = read(port, rbuf + rlen, FRAME_HDR + FRAME_MAX - rlen);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		host_gone(n == 0 ? "EOF" : strerror(errno));
		return;
	}
	rlen += (size_t)n;
}

void port_service(short revents)
{
	if (!connected)
		return;
	if (revents & POLLOUT)
		ctl_flush();
	if (revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
		port_fill();
}

void port_check_reconnect(void)
{
	if (connected)
		return;
	struct pollfd pfd = {.fd = port, .events = 0};
	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)))
		return;
	connected = 1;
	rpos = rlen = 0; /* the rest of a frame from the old host */
	dprintf(2, "boson-init: a host connected to the port again\n");
	if (dropped) {
		log_msg("dropped %llu bytes of output while no host was connected", dropped);
		dropped = 0;
	}
	ctl_flush();
}

/* ---------------------------------------------------------------- the boson.log port */

int open_log_port(void)
{
	char dev[300];
	if (wait_device("/sys/class/virtio-ports", "vport", "name", LOG_PORT_NAME, dev, sizeof dev) < 0) {
		errno = ENODEV;
		return -1;
	}
	log_port = open(dev, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	return log_port < 0 ? -1 : 0;
}

void log_record(uint8_t type, const void *payload, size_t n)
{
	if (log_port < 0)
		return;
	if (n > sizeof lbuf - FRAME_HDR - 8)
		n = sizeof lbuf - FRAME_HDR - 8;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	frame_hdr_encode(lbuf, type, 0, (uint32_t)(8 + n));
	put_u64(lbuf + FRAME_HDR, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
	if (n)
		memcpy(lbuf + FRAME_HDR + 8, payload, n);
	const uint8_t *b = lbuf;
	size_t left = FRAME_HDR + 8 + n;
	while (left > 0) {
		ssize_t w = write(log_port, b, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			dprintf(2, "boson-init: log port write: %s\n", strerror(errno));
			return;
		}
		b += w;
		left -= (size_t)w;
	}
}

void report(uint8_t type, const void *payload, size_t n)
{
	log_record(type, payload, n);
	ctl_send(type, 0, payload, n);
}

/* ---------------------------------------------------------------- diagnostics, failures, the end */

/* Logs a diagnostic line on the console and, once the port is open, as a LOG frame. */
void log_msg(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dprintf(2, "boson-init: %s\n", msg);
	ctl_send(T_LOG, 0, msg, strlen(msg));
}

void reject_exec(uint16_t session, const char *msg)
{
	reject_exec_as(session, R_INTERNAL, msg);
}

void reject_exec_as(uint16_t session, int reason, const char *msg)
{
	uint8_t buf[512];
	size_t n = strlen(msg);
	if (n > sizeof buf - 1)
		n = sizeof buf - 1;
	buf[0] = (uint8_t)reason;
	memcpy(buf + 1, msg, n);
	ctl_send(T_ERROR, session, buf, n + 1);
	uint8_t e[8];
	put_u32(e, 125);
	put_u32(e + 4, 0);
	ctl_send(T_EXIT, session, e, sizeof e);
}

/* After EXIT: waits until the host closes its end of the port, or LINGER_MS pass, discarding anything it sends.
 * QEMU drops output still queued in the virtio ring when the VM powers off, and the guest cannot see when that
 * ring is drained; the host closing the port after reading EXIT (which comes last) is the signal. With no host
 * connected (POLLHUP at once) there is nothing to wait for. */
void linger(void)
{
	if (!connected)
		return;
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
		report(T_ERROR, msg, (size_t)n + 1);
		uint8_t e[8];
		put_u32(e, (uint32_t)status);
		put_u32(e + 4, 0);
		report(T_EXIT, e, sizeof e);
		ctl_drain();
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
	uint8_t frame[FRAME_HDR + sizeof hello];
	frame_hdr_encode(frame, T_HELLO, 0, sizeof hello);
	memcpy(frame + FRAME_HDR, hello, sizeof hello);
	for (size_t off = 0; off < sizeof frame;) {
		ssize_t w = write(port, frame + off, sizeof frame - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			dprintf(2, "boson-init: write HELLO: %s\n", strerror(errno));
			power_off();
		}
		off += (size_t)w;
	}
	/* The HELLO write blocked until the host was connected. From now on the port is non-blocking: a blocking
	 * write would wait forever for a host that has gone, where poll() reports the hang-up. */
	fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_NONBLOCK);
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

/* Waits for the SPEC frame and parses it; reports SPEC_INVALID on failure. An EXEC before it is rejected (the
 * main process has not started), anything else is ignored. */
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
			if (h.type == T_EXEC && h.session != 0)
				reject_exec(h.session, "the container's main process has not started");
			consume_frame(&h);
		}
		struct pollfd pfd = {.fd = port, .events = port_events(1)};
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
			dprintf(2, "boson-init: poll port: %s\n", strerror(errno));
			power_off();
		}
		port_service(pfd.revents);
	}
}
