/* boson-init: PID 1 of every Boson micro-VM. It loads the modules, talks to the host over the virtio-serial
 * port "boson.ctl" (port.c), builds the container's overlay root (root.c), runs the container process and
 * forwards its I/O and signals (this file), reports its exit status, then powers the VM off. The wire format is
 * docs/guest-protocol.md. PID 1 must never exit: every path ends in power_off(). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "port.h"
#include "proto.h"
#include "root.h"
#include "user.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define STDIN_HIGH (4u << 20)     /* stop reading the port while this much stdin is pending */
#define DRAIN_WAIT_MS 5000        /* how long to wait for output after killing everything */

/* Blocks SIGCHLD (read through the returned signalfd) and ignores the signals PID 1 could be sent. */
static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int ign[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};
	for (size_t i = 0; i < sizeof ign / sizeof ign[0]; i++)
		signal(ign[i], SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* ---------------------------------------------------------------- starting the process */

/* What the child writes to the exec pipe when it fails: an ERROR reason and an errno. */
struct start_error {
	int reason;
	int err;
};

/* The running container process and its I/O. */
struct proc {
	pid_t pid;
	int tty;
	int master;      /* pty master (tty), else -1 */
	int in_fd;       /* where stdin bytes go: pipe write end or the master; -1 when closed */
	int out_fd;      /* stdout pipe read end or the master; -1 at EOF */
	int err_fd;      /* stderr pipe read end; -1 at EOF or with a tty */
	int exited;
	int wstatus;
	uint8_t *in_buf; /* pending stdin bytes: in_buf[in_off .. in_off+in_len) */
	size_t in_off, in_len, in_cap;
	int in_eof;      /* STDIN_EOF received: close in_fd once in_buf is empty */
};

/* In the child: reports a failure through the exec pipe and exits. */
static _Noreturn void child_fail(int pipe_fd, int reason, int err)
{
	struct start_error e = {reason, err};
	ssize_t w = write(pipe_fd, &e, sizeof e);
	(void)w;
	_exit(127);
}

/* Looks up name in envp; returns its value or NULL. */
static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* Executes argv like execvp, but searching the PATH of envp (or DEFAULT_PATH). Returns only on failure,
 * with errno set: EACCES if some candidate was not executable and none succeeded, else ENOENT. */
static void exec_path(char *const *argv, char *const *envp)
{
	const char *file = argv[0];
	if (!*file) {
		errno = ENOENT;
		return;
	}
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return;
	}
	const char *path = env_get(envp, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	int seen_eacces = 0;
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		if (end > p) {
			char buf[4096];
			if (snprintf(buf, sizeof buf, "%.*s/%s", (int)(end - p), p, file) < (int)sizeof buf) {
				execve(buf, argv, envp);
				if (errno == EACCES)
					seen_eacces = 1;
				else if (errno != ENOENT && errno != ENOTDIR)
					return;
			}
		}
		if (!*end)
			break;
		p = end;
	}
	errno = seen_eacces ? EACCES : ENOENT;
}

/* In the child: sets up the session, stdio, root, cwd, and credentials, then executes the command. */
static _Noreturn void child_exec(const struct spec *spec, const struct user_ids *ids, int fds[3], int errpipe)
{
	sigset_t none;
	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid() < 0)
		child_fail(errpipe, R_INTERNAL, errno);
	if (spec->tty && ioctl(fds[0], TIOCSCTTY, 0) < 0)
		child_fail(errpipe, R_INTERNAL, errno);
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			child_fail(errpipe, R_INTERNAL, errno);
	if (chroot(NEWROOT) < 0 || chdir("/") < 0)
		child_fail(errpipe, R_INTERNAL, errno);
	if (mkdir_p(spec->cwd, 0755) < 0 || chdir(spec->cwd) < 0)
		child_fail(errpipe, R_CWD_FAILED, errno);
	gid_t groups[USER_MAX_GROUPS];
	for (size_t i = 0; i < ids->ngroups; i++)
		groups[i] = ids->groups[i];
	if (setgroups(ids->ngroups, groups) < 0 || setgid(ids->gid) < 0 || setuid(ids->uid) < 0)
		child_fail(errpipe, R_INTERNAL, errno);
	umask(022);
	exec_path(spec->argv, spec->envp);
	int e = errno;
	child_fail(errpipe, (e == ENOENT || e == ENOTDIR) ? R_NOT_FOUND : R_NOT_EXECUTABLE, e);
}

/* Sets O_NONBLOCK on fd. */
static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Opens a new pty on the container's devpts: stores the master in p and returns the slave (O_NOCTTY).
 * Bind-mounts the slave over the container's /dev/console, as Docker does. Reports INTERNAL on failure. */
static int open_pty(const struct spec *spec, struct proc *p)
{
	int m = open(NEWROOT "/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		fail(R_INTERNAL, 125, "open ptmx: %s", strerror(errno));
	int unlock = 0;
	unsigned num = 0;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &num) < 0)
		fail(R_INTERNAL, 125, "unlock pty: %s", strerror(errno));
	char path[64];
	snprintf(path, sizeof path, NEWROOT "/dev/pts/%u", num);
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		s = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		fail(R_INTERNAL, 125, "open pty slave: %s", strerror(errno));
	struct winsize ws = {.ws_row = spec->rows, .ws_col = spec->cols};
	ioctl(m, TIOCSWINSZ, &ws);
	if (mount(path, NEWROOT "/dev/console", NULL, MS_BIND, NULL) < 0)
		log_msg("bind %s on /dev/console: %s", path, strerror(errno));
	set_nonblock(m);
	p->master = p->in_fd = p->out_fd = m;
	p->err_fd = -1;
	return s;
}

/* Creates a close-on-exec pipe or reports INTERNAL. */
static void must_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		fail(R_INTERNAL, 125, "pipe: %s", strerror(errno));
}

/* Starts the container process; sends STARTED, or ERROR + EXIT and powers off. */
static void start_process(const struct spec *spec, const struct user_ids *ids, struct proc *p)
{
	int child_fds[3];
	memset(p, 0, sizeof *p);
	p->tty = spec->tty;
	p->master = p->in_fd = p->out_fd = p->err_fd = -1;
	if (spec->tty) {
		int s = open_pty(spec, p);
		child_fds[0] = child_fds[1] = child_fds[2] = s;
	} else {
		int out[2], err[2];
		must_pipe(out);
		must_pipe(err);
		p->out_fd = out[0];
		p->err_fd = err[0];
		set_nonblock(out[0]);
		set_nonblock(err[0]);
		child_fds[1] = out[1];
		child_fds[2] = err[1];
		if (spec->stdin_open) {
			int in[2];
			must_pipe(in);
			p->in_fd = in[1];
			set_nonblock(in[1]);
			child_fds[0] = in[0];
		} else {
			child_fds[0] = open(NEWROOT "/dev/null", O_RDONLY | O_CLOEXEC);
			if (child_fds[0] < 0)
				fail(R_INTERNAL, 125, "open /dev/null: %s", strerror(errno));
		}
	}
	int errpipe[2];
	must_pipe(errpipe);
	pid_t pid = fork();
	if (pid < 0)
		fail(R_INTERNAL, 125, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(errpipe[0]);
		child_exec(spec, ids, child_fds, errpipe[1]);
	}
	close(errpipe[1]);
	close(child_fds[0]);
	if (!spec->tty) {
		close(child_fds[1]);
		close(child_fds[2]);
	}
	p->pid = pid;

	struct start_error e;
	ssize_t n;
	do
		n = read(errpipe[0], &e, sizeof e);
	while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n == (ssize_t)sizeof e) {
		waitpid(pid, NULL, 0);
		switch (e.reason) {
		case R_CWD_FAILED:
			fail(e.reason, 125, "working directory \"%s\": %s", spec->cwd, strerror(e.err));
		case R_NOT_FOUND:
			fail(e.reason, 127, "exec \"%s\": %s", spec->argv[0],
			     strchr(spec->argv[0], '/') ? strerror(e.err) : "executable file not found in $PATH");
		case R_NOT_EXECUTABLE:
			fail(e.reason, 126, "exec \"%s\": %s", spec->argv[0], strerror(e.err));
		default:
			fail(R_INTERNAL, 125, "starting \"%s\": %s", spec->argv[0], strerror(e.err));
		}
	}
	uint8_t started[4];
	put_u32(started, (uint32_t)pid);
	send_frame(T_STARTED, started, sizeof started);
}

/* ---------------------------------------------------------------- the event loop */

/* Reaps every exited child; records the container process's status. */
static void reap(struct proc *p)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == p->pid) {
			p->exited = 1;
			p->wstatus = st;
		}
	}
}

/* Drains the signalfd and reaps. */
static void on_sigchld(int sfd, struct proc *p)
{
	struct signalfd_siginfo si[8];
	while (read(sfd, si, sizeof si) > 0)
		;
	reap(p);
}

/* Reads once from an output fd and forwards it as a frame of the given type. Returns 1 if data moved, 0 if
 * nothing was ready, -1 at EOF (or EIO from a pty master whose slave is closed). */
static int pump_output(int fd, uint8_t type)
{
	ssize_t n = read(fd, payload_buffer(), CHUNK);
	if (n > 0) {
		send_payload(type, (size_t)n);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

/* Services an output fd: forwards what is ready and closes it at EOF. */
static void service_output(struct proc *p, int *fd, uint8_t type)
{
	if (pump_output(*fd, type) < 0) {
		if (*fd != p->master)
			close(*fd);
		*fd = -1;
	}
}

/* Stops sending stdin: closes the pipe (without a tty) and drops pending bytes. */
static void close_stdin(struct proc *p)
{
	if (p->in_fd >= 0 && p->in_fd != p->master)
		close(p->in_fd);
	p->in_fd = -1;
	p->in_len = p->in_off = 0;
}

/* Queues stdin bytes for the process (dropped if stdin is closed). */
static void queue_stdin(struct proc *p, const uint8_t *data, size_t n)
{
	if (p->in_fd < 0 || n == 0)
		return;
	if (p->in_off + p->in_len + n > p->in_cap) {
		memmove(p->in_buf, p->in_buf + p->in_off, p->in_len);
		p->in_off = 0;
		if (p->in_len + n > p->in_cap) {
			size_t cap = (p->in_len + n) * 2;
			uint8_t *nb = realloc(p->in_buf, cap);
			if (!nb) {
				log_msg("out of memory for stdin; dropping %zu bytes", n);
				return;
			}
			p->in_buf = nb;
			p->in_cap = cap;
		}
	}
	memcpy(p->in_buf + p->in_off + p->in_len, data, n);
	p->in_len += n;
}

/* Writes as much pending stdin as the process takes without blocking; closes stdin after STDIN_EOF. */
static void flush_stdin(struct proc *p)
{
	while (p->in_fd >= 0 && p->in_len > 0) {
		ssize_t w = write(p->in_fd, p->in_buf + p->in_off, p->in_len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				close_stdin(p); /* EPIPE or EIO: the reader is gone */
			return;
		}
		p->in_off += (size_t)w;
		p->in_len -= (size_t)w;
	}
	if (p->in_len == 0)
		p->in_off = 0;
	if (p->in_eof && p->in_len == 0 && !p->tty)
		close_stdin(p);
}

/* Handles one frame from the host while the process runs. */
static void handle_frame(struct proc *p, const struct frame_hdr *h, const uint8_t *payload)
{
	if (h->session != 0)
		return;
	switch (h->type) {
	case T_STDIN:
		if (!p->in_eof)
			queue_stdin(p, payload, h->len);
		break;
	case T_STDIN_EOF:
		if (p->in_eof)
			break;
		p->in_eof = 1;
		if (p->tty && p->in_fd >= 0) {
			struct termios t;
			uint8_t veof = 4; /* ^D */
			if (tcgetattr(p->master, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE)
				veof = t.c_cc[VEOF];
			queue_stdin(p, &veof, 1);
		}
		break;
	case T_SIGNAL: {
		if (h->len != 4)
			break;
		uint32_t sig = get_u32(payload);
		if (sig == 0 || sig >= (uint32_t)NSIG)
			break;
		pid_t pg = p->tty ? tcgetpgrp(p->master) : -1;
		if (pg > 0 && kill(-pg, (int)sig) == 0)
			break;
		kill(p->pid, (int)sig);
		break;
	}
	case T_RESIZE:
		if (h->len == 4 && p->tty) {
			struct winsize ws = {.ws_row = get_u16(payload), .ws_col = get_u16(payload + 2)};
			ioctl(p->master, TIOCSWINSZ, &ws);
		}
		break;
	default:
		break; /* SPEC again, unknown types */
	}
}

/* Handles every complete frame already read from the port, then pushes stdin. */
static void handle_frames(struct proc *p)
{
	struct frame_hdr h;
	const uint8_t *payload;
	while ((payload = next_frame(&h))) {
		handle_frame(p, &h, payload);
		consume_frame(&h);
	}
	flush_stdin(p);
}

/* Reads from the port and handles every complete frame. */
static void service_port(struct proc *p)
{
	port_fill();
	handle_frames(p);
}

/* Runs until the container process has exited: forwards I/O, frames and signals. */
static void event_loop(struct proc *p, int sfd)
{
	handle_frames(p); /* frames that arrived together with SPEC */
	while (!p->exited) {
		struct pollfd fds[5];
		int n = 0, i_port = -1, i_sig, i_out = -1, i_err = -1, i_in = -1;
		if (p->in_len < STDIN_HIGH) {
			i_port = n;
			fds[n++] = (struct pollfd){.fd = port_fd(), .events = POLLIN};
		}
		i_sig = n;
		fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		if (p->out_fd >= 0) {
			i_out = n;
			fds[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
		}
		if (p->err_fd >= 0) {
			i_err = n;
			fds[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
		}
		if (p->in_fd >= 0 && p->in_len > 0) {
			i_in = n;
			fds[n++] = (struct pollfd){.fd = p->in_fd, .events = POLLOUT};
		}
		if (poll(fds, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail(R_INTERNAL, 125, "poll: %s", strerror(errno));
		}
		if (i_sig >= 0 && fds[i_sig].revents)
			on_sigchld(sfd, p);
		if (i_out >= 0 && fds[i_out].revents)
			service_output(p, &p->out_fd, T_STDOUT);
		if (i_err >= 0 && fds[i_err].revents)
			service_output(p, &p->err_fd, T_STDERR);
		if (i_in >= 0 && fds[i_in].revents)
			flush_stdin(p);
		if (i_port >= 0 && fds[i_port].revents)
			service_port(p);
	}
}

/* After the process exited: forwards the rest of its output, kills every other process, drains the output to
 * EOF, reaps, syncs, sends EXIT, unmounts and powers off. */
static _Noreturn void finish(struct proc *p, int sfd)
{
	while (p->out_fd >= 0 && pump_output(p->out_fd, T_STDOUT) > 0)
		;
	while (p->err_fd >= 0 && pump_output(p->err_fd, T_STDERR) > 0)
		;
	kill(-1, SIGKILL);
	if (!p->tty)
		close_stdin(p);
	long long deadline = now_ms() + DRAIN_WAIT_MS;
	while (p->out_fd >= 0 || p->err_fd >= 0) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			log_msg("output still open %d ms after the process exited; giving up on it", DRAIN_WAIT_MS);
			break;
		}
		struct pollfd fds[3] = {{.fd = sfd, .events = POLLIN},
					{.fd = p->out_fd, .events = POLLIN},
					{.fd = p->err_fd, .events = POLLIN}};
		if (poll(fds, 3, (int)left) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			on_sigchld(sfd, p);
		if (p->out_fd >= 0 && fds[1].revents)
			service_output(p, &p->out_fd, T_STDOUT);
		if (p->err_fd >= 0 && fds[2].revents)
			service_output(p, &p->err_fd, T_STDERR);
	}
	reap(p);
	sync();
	uint32_t signo;
	int status = exit_status(p->wstatus, &signo);
	send_exit(status, signo);
	if (p->master >= 0)
		close(p->master);
	unmount_all();
	linger();
	power_off();
}

int main(void)
{
	umask(0);
	mount_early();
	ensure_stdio(); /* first, so that no fd of init's lands on 0, 1 or 2 */
	int sfd = setup_signals();
	load_modules();
	open_port();

	struct spec spec;
	read_spec(&spec);
	prepare_root(&spec);
	if (sethostname(spec.hostname, strlen(spec.hostname)) < 0)
		log_msg("sethostname %s: %s", spec.hostname, strerror(errno));
	struct user_ids ids;
	char err[512];
	if (user_resolve(spec.user, NEWROOT "/etc/passwd", NEWROOT "/etc/group", &ids, err, sizeof err) < 0)
		fail(R_USER_UNKNOWN, 125, "%s", err);
	if (sfd < 0)
		fail(R_INTERNAL, 125, "signalfd: %s", strerror(errno));

	struct proc p;
	start_process(&spec, &ids, &p);
	event_loop(&p, sfd);
	finish(&p, sfd);
}
