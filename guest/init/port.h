/* port.h: the channels to the host. The control port "boson.ctl" carries frames both ways; what init sends on
 * it goes through a queue, so that a slow or absent host never blocks anything else. The optional log port
 * "boson.log" (protocol version 2, LOG_PORT) takes timestamped records of the main process with blocking writes
 * (QEMU appends them to a file). Also: reporting failures and powering the VM off. One VM, so the state is
 * global. */
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

/* With LOG_PORT: a closed host side no longer powers the VM off; init waits for a host to connect again. */
void set_reconnectable(void);

/* Finds and opens the boson.log port (blocking writes). Returns 0, or -1 with errno. */
int open_log_port(void);

/* Writes one log-port record (type, CLOCK_REALTIME timestamp, n payload bytes, n <= CHUNK + 16); blocks until
 * the port has taken it. Does nothing when the log port is not open. */
void log_record(uint8_t type, const void *payload, size_t n);

/* Queues one frame for boson.ctl (n <= CHUNK + 16). While no host is connected, STDOUT/STDERR frames beyond a cap
 * are dropped (and counted in a LOG note for the next host). */
void ctl_send(uint8_t type, uint16_t session, const void *payload, size_t n);

/* Sends a main-process report (STARTED, ERROR, EXIT) on boson.ctl and, when open, as a record on boson.log. */
void report(uint8_t type, const void *payload, size_t n);

/* True when sources whose output goes to boson.ctl may be read now: the queue is short, or no host is connected
 * (then output is buffered up to a cap and dropped beyond). */
int ctl_accepts_output(void);

/* True while a host is connected to boson.ctl. */
int ctl_connected(void);

/* The poll events to ask of the port (0 when the port must not be polled: no host connected). want_input says
 * whether init wants to read frames now. */
short port_events(int want_input);

/* Handles poll's revents for the port: writes queued frames, reads frames (then next_frame returns them), and
 * notices a closed host side (powers off, unless reconnectable). */
void port_service(short revents);

/* While no host is connected: checks whether one has connected again. */
void port_check_reconnect(void);

/* Writes queued frames until the queue is empty or no host is connected (powers off if the host closed the port
 * and init is not reconnectable). */
void ctl_drain(void);

/* Logs a diagnostic line on the console and, once the port is open, as a LOG frame. */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Answers an EXEC that cannot run with ERROR(INTERNAL, message) + EXIT(125) on its session. */
void reject_exec(uint16_t session, const char *msg);

/* The same, with ERROR reason `reason` instead of INTERNAL. */
void reject_exec_as(uint16_t session, int reason, const char *msg);

/* After EXIT: waits until the host closes the port (at most LINGER_MS); returns at once if none is connected. */
void linger(void);

/* Reports a failure of the main process as ERROR(reason, message) + EXIT(status), waits for the host, then powers
 * off. */
_Noreturn void fail(int reason, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The port's fd, for poll(). */
int port_fd(void);

/* If a complete frame is buffered, decodes its header into h and returns its payload, else NULL.
 * A frame longer than FRAME_MAX is fatal. */
const uint8_t *next_frame(struct frame_hdr *h);

/* Drops the frame with header h (the one next_frame returned). */
void consume_frame(const struct frame_hdr *h);

/* Waits for the SPEC frame and parses it; reports SPEC_INVALID on failure. EXEC frames before it are rejected,
 * anything else is ignored. */
void read_spec(struct spec *spec);

#endif
