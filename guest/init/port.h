/* port.h: the control channel to the host (the virtio-serial port "boson.ctl"): sending frames, reading the
 * host's frames, reporting failures, and powering the VM off. One port per VM, so the state is global. */
#ifndef BOSON_PORT_H
#define BOSON_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define CHUNK 65536 /* largest STDOUT/STDERR payload */

/* Syncs and powers the VM off; never returns. Falls back to a reboot, which QEMU -no-reboot turns into exit. */
_Noreturn void power_off(void);

/* Milliseconds on the monotonic clock. */
long long now_ms(void);

/* Waits (up to 5 s) for the port, opens it, sends HELLO, then makes it non-blocking. Powers off if it never
 * appears. */
void open_port(void);

/* Sends one frame of session 0 with a payload of at most CHUNK bytes. Blocks while the host is not reading;
 * powers off if the host has gone. */
void send_frame(uint8_t type, const void *payload, size_t n);

/* CHUNK bytes where a payload can be built in place, then sent with send_payload (saves a copy). */
uint8_t *payload_buffer(void);

/* Sends the n bytes at payload_buffer() as a frame of the given type. */
void send_payload(uint8_t type, size_t n);

/* Logs a diagnostic line on the console and, once the port is open, as a LOG frame. */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sends EXIT(status, signo). */
void send_exit(int status, uint32_t signo);

/* After EXIT: waits until the host closes the port (at most LINGER_MS). See port.c. */
void linger(void);

/* Reports a failure as ERROR(reason, message) + EXIT(status), waits for the host, then powers off. */
_Noreturn void fail(int reason, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Waits until the port is ready for events (POLLIN or POLLOUT); powers off if the host has closed it. */
void port_wait(short events);

/* The port's fd, for poll(). */
int port_fd(void);

/* Reads what the port has ready into the input buffer; powers off when the host has closed it. */
void port_fill(void);

/* If a complete frame is buffered, decodes its header into h and returns its payload, else NULL.
 * A frame longer than FRAME_MAX is fatal. */
const uint8_t *next_frame(struct frame_hdr *h);

/* Drops the frame with header h (the one next_frame returned). */
void consume_frame(const struct frame_hdr *h);

/* Waits for the SPEC frame (ignoring anything else) and parses it; reports SPEC_INVALID on failure. */
void read_spec(struct spec *spec);

#endif
