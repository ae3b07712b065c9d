/* boson-init: PID 1 of every Boson micro-VM. It loads the modules, talks to the host over the virtio-serial
 * port "boson.ctl" (port.c), sets the clock and the network (net.c), builds the container's overlay root and
 * volumes (root.c), runs the container process and the exec sessions and forwards their I/O and signals (this
 * file), reports exit statuses, then powers the VM off. The wire format is
 * docs/guest-protocol.md. PID 1 must never exit: every path ends in power_off(). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "port.h"
#include "proto.h"
#include "net.h"
#include "root.h"
#include "settings.h"
#include "user.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define STDIN_HIGH (4u << 20)     /* stop reading the port while this much stdin is pending */
#define DRAIN_WAIT_MS 5000        /* how long to wait for output after killing everything */
#define EXEC_DRAIN_MS 1000        /* how long an exited exec's output may stay open (background children) */
#define RECONNECT_POLL_MS 100     /* how often to look for a host while none is connected */
#define MAX_EXECS 64              /* live exec sessions at once */

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

/* ---------------------------------------------------------------- processes */

/* What the child writes to the exec pipe when it fails: an ERROR reason and an errno. */
struct start_error {
	int reason;
	int err;
};

/* Why a process could not be started: an ERROR reason, the EXIT status to report, and a message. */
struct start_failure {
	int reason;
	int status;
	char msg[512];
};

/* A process of the container and its I/O: the main process (session 0) or an exec session. */
struct proc {
	uint16_t session;
	int live;        /* exec slot in use: EXEC accepted, EXIT not yet sent */
	int to_log;      /* output goes to the log port (main process with LOG_PORT) */
	pid_t pid;
	int tty;
	int master;      /* pty master (tty), else -1 */
	int in_fd;       /* where stdin bytes go: pipe write end or the master; -1 when closed */
	int out_fd;      /* stdout pipe read end or the master; -1 at EOF */
	int err_fd;      /* stderr pipe read end; -1 at EOF or with a tty */
	int exited;
	int wstatus;
	long long drain_deadline; /* exec: when to stop waiting for its output to reach EOF after it exited */
	uint8_t *in_buf; /* pending stdin bytes: in_buf[in_off .. in_off+in_len) */
	size_t in_off, in_len, in_cap;
	int in_eof;      /* STDIN_EOF received: close in_fd once in_buf is empty */
};

static struct proc main_proc;
static struct proc execs[MAX_EXECS];
static int finishing; /* the main process has exited: no new exec sessions */
static uint8_t iobuf[CHUNK];

/* Formats a start failure and returns -1. */
static int start_failed(struct start_failure *f, int reason, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int start_failed(struct start_failure *f, int reason, int status, const char *fmt, ...)
{
	f->reason = reason;
	f->status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
	return -1;
}

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

/* out = a followed by b (PATH_MAX bytes); -1 with ENAMETOOLONG when it does not fit. */
static int path_join(char *out, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na + nb >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(out, a, na);
	memcpy(out + na, b, nb + 1);
	return 0;
}

/* Makes the mount point `p` for a bind of `src` (a directory for a directory, else a file), as far as it can: the
 * bind that follows reports what is missing. */
static void make_mount_point(const char *src, const char *p)
{
	struct stat st;
	if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
		mkdir_p(p, 0755);
		return;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", p);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		mkdir_p(dir, 0755);
	}
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd >= 0)
		close(fd);
}

/* Binds each EXEC_MOUNT of the process (a path of the pod VM onto a path of its root `r`), read-only where asked.
 * With `points_only`, only makes their mount points (before the root may become read-only). */
static int exec_mounts(const struct spec *spec, const char *r, int points_only)
{
	for (size_t i = 0; i < spec->nexec_mounts; i++) {
		char text[PATH_MAX * 2 + 8], src[PATH_MAX], p[PATH_MAX], err[128], *target;
		int ro;
		snprintf(text, sizeof text, "%s", spec->exec_mounts[i]);
		if (exec_mount_parse(text, &target, &ro, err, sizeof err) < 0) {
			errno = EINVAL;
			return -1;
		}
		if (path_join(src, NEWROOT, text) < 0 || path_join(p, r, target) < 0)
			return -1;
		make_mount_point(src, p);
		if (points_only)
			continue;
		if (mount(src, p, NULL, MS_BIND | MS_REC, NULL) < 0)
			return -1;
		if (ro && mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
			return -1;
	}
	return 0;
}

/* In the child of a pod container's process: a mount namespace of its own, in which its EXEC_ROOT (a directory of
 * the pod VM's root, holding the container's own root filesystem) gets /proc, /sys, /dev and the VM's /etc/hosts
 * and /etc/resolv.conf (the pod shares them), then its EXEC_MOUNTs, read-only with EXEC_READONLY (those mounts stay
 * as they are), then becomes the process's root. Returns 0, or -1 with errno. */
static int enter_exec_root(const struct spec *spec)
{
	const char *root = spec->exec_root;
	int readonly = spec->exec_readonly;
	static const struct {
		const char *dir, *type, *src;
		unsigned long flags;
	} fs[] = {
		{"/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC},
		{"/sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY},
		{"/dev", NULL, NEWROOT "/dev", MS_BIND | MS_REC},
	};
	static const char *const files[] = {"/etc/hosts", "/etc/resolv.conf"};
	int have[sizeof files / sizeof files[0]] = {0};
	char r[PATH_MAX], p[PATH_MAX], src[PATH_MAX];
	if (path_join(r, NEWROOT, root) < 0)
		return -1;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	/* What is mounted on must exist before the root may become read-only. */
	for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
		if (path_join(p, r, fs[i].dir) < 0 || mkdir_p(p, 0755) < 0)
			return -1;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (path_join(src, NEWROOT, files[i]) < 0)
			return -1;
		if (access(src, R_OK) < 0)
			continue;
		if (path_join(p, r, "/etc") < 0 || mkdir_p(p, 0755) < 0 || path_join(p, r, files[i]) < 0)
			return -1;
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return -1;
		close(fd);
		have[i] = 1;
	}
	if (exec_mounts(spec, r, 1) < 0)
		return -1;
	if (readonly && (mount(r, r, NULL, MS_BIND | MS_REC, NULL) < 0 ||
			 mount(NULL, r, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0))
		return -1;
	for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
		if (path_join(p, r, fs[i].dir) < 0 || mount(fs[i].src, p, fs[i].type, fs[i].flags, NULL) < 0)
			return -1;
	/* The VM's cgroup v2, read-only: the container sees its limits (and cannot change them). */
	if (access(NEWROOT "/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 &&
	    (path_join(p, r, "/sys/fs/cgroup") < 0 ||
	     mount("cgroup2", p, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0))
		return -1;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (!have[i])
			continue;
		if (path_join(src, NEWROOT, files[i]) < 0 || path_join(p, r, files[i]) < 0 || mount(src, p, NULL, MS_BIND, NULL) < 0)
			return -1;
	}
	/* The container's own mounts last: over /dev (a termination log) and /etc/hosts too. */
	if (exec_mounts(spec, r, 0) < 0)
		return -1;
	return chroot(r) < 0 || chdir("/") < 0 ? -1 : 0;
}

/* Writes text to the file at path; 0, or -1 with errno. */
static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* In the child of a pod container's process: joins the VM's cgroup `rel` (EXEC_CGROUP, made if missing, each
 * parent delegating the cpu, memory and pids controllers), when the guest has cgroup v2 (without it the host
 * refuses limits before it asks). Returns 0, or -1 with errno. */
static int join_cgroup(const char *rel)
{
	char p[PATH_MAX];
	size_t len = (size_t)snprintf(p, sizeof p, "%s", NEWROOT "/sys/fs/cgroup");
	if (access(NEWROOT "/sys/fs/cgroup/cgroup.controllers", F_OK) < 0)
		return 0;
	for (const char *c = rel; *c;) {
		char sub[PATH_MAX + sizeof "/cgroup.subtree_control"];
		snprintf(sub, sizeof sub, "%s/cgroup.subtree_control", p);
		write_text(sub, "+cpu +memory +pids"); /* best effort: a controller the kernel lacks stays off */
		size_t n = strcspn(c, "/");
		if (len + 1 + n >= sizeof p) {
			errno = ENAMETOOLONG;
			return -1;
		}
		p[len++] = '/';
		memcpy(p + len, c, n);
		len += n;
		p[len] = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		c += n;
		if (*c == '/')
			c++;
	}
	if (len + sizeof "/cgroup.procs" > sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p + len, "/cgroup.procs", sizeof "/cgroup.procs");
	return write_text(p, "0");
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
	if (spec->exec_cgroup && join_cgroup(spec->exec_cgroup) < 0)
		child_fail(errpipe, R_INTERNAL, errno);
	if (spec->exec_root) {
		if (enter_exec_root(spec) < 0)
			child_fail(errpipe, R_MOUNT_FAILED, errno);
	} else if (chroot(NEWROOT) < 0 || chdir("/") < 0)
		child_fail(errpipe, R_INTERNAL, errno);
	if (mkdir_p(spec->cwd, 0755) < 0 || chdir(spec->cwd) < 0)
		child_fail(errpipe, R_CWD_FAILED, errno);
	gid_t groups[USER_MAX_GROUPS + sizeof spec->exec_groups / sizeof spec->exec_groups[0]];
	size_t ngroups = 0;
	for (size_t i = 0; i < ids->ngroups; i++)
		groups[ngroups++] = ids->groups[i];
	for (size_t i = 0; i < spec->nexec_groups; i++)
		groups[ngroups++] = spec->exec_groups[i];
	/* The capability bounding set (needs CAP_SETPCAP, so before the user changes): root keeps just these after the
	 * exec; other users have none either way (no ambient capabilities). */
	if (spec->has_exec_caps)
		for (int cap = 0; cap < 64 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
			if (!(spec->exec_caps & (UINT64_C(1) << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
				child_fail(errpipe, R_INTERNAL, errno);
	if (spec->exec_no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(errpipe, R_INTERNAL, errno);
	if (setgroups(ngroups, groups) < 0 || setgid(ids->gid) < 0 || setuid(ids->uid) < 0)
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

/* Closes *fd if open and marks it closed. */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Opens a new pty on the container's devpts: stores the master in p and returns the slave (O_NOCTTY), or -1.
 * For the main process, bind-mounts the slave over the container's /dev/console, as Docker does. */
static int open_pty(const struct spec *spec, struct proc *p, struct start_failure *f)
{
	int m = open(NEWROOT "/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return start_failed(f, R_INTERNAL, 125, "open ptmx: %s", strerror(errno));
	int unlock = 0;
	unsigned num = 0;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCGPTN, &num) < 0) {
		close(m);
		return start_failed(f, R_INTERNAL, 125, "unlock pty: %s", strerror(errno));
	}
	char path[64];
	snprintf(path, sizeof path, NEWROOT "/dev/pts/%u", num);
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		s = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		close(m);
		return start_failed(f, R_INTERNAL, 125, "open pty slave: %s", strerror(errno));
	}
	struct winsize ws = {.ws_row = spec->rows, .ws_col = spec->cols};
	ioctl(m, TIOCSWINSZ, &ws);
	if (p->session == 0 && mount(path, NEWROOT "/dev/console", NULL, MS_BIND, NULL) < 0)
		log_msg("bind %s on /dev/console: %s", path, strerror(errno));
	set_nonblock(m);
	p->master = p->in_fd = p->out_fd = m;
	p->err_fd = -1;
	return s;
}

/* Releases everything a process holds (fds, stdin buffer), keeping its identity. */
static void proc_release(struct proc *p)
{
	if (p->in_fd >= 0 && p->in_fd != p->master)
		close(p->in_fd);
	if (p->out_fd >= 0 && p->out_fd != p->master)
		close(p->out_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	close_fd(&p->master);
	p->in_fd = p->out_fd = p->err_fd = -1;
	free(p->in_buf);
	p->in_buf = NULL;
	p->in_off = p->in_len = p->in_cap = 0;
}

/* Starts a process of the container as spec says (for the main process or an exec session): sends nothing.
 * Returns 0 with p->pid set, or -1 with f filled in (p then holds nothing). */
static int start_process(const struct spec *spec, const struct user_ids *ids, struct proc *p,
			 struct start_failure *f)
{
	int child_fds[3] = {-1, -1, -1};
	int close_after[3] = {-1, -1, -1}; /* the child's ends, closed in the parent after fork */
	p->tty = spec->tty;
	p->master = p->in_fd = p->out_fd = p->err_fd = -1;
	if (spec->tty) {
		int s = open_pty(spec, p, f);
		if (s < 0)
			return -1;
		child_fds[0] = child_fds[1] = child_fds[2] = close_after[0] = s;
	} else {
		int out[2], err[2], in[2] = {-1, -1};
		if (pipe2(out, O_CLOEXEC) < 0)
			return start_failed(f, R_INTERNAL, 125, "pipe: %s", strerror(errno));
		if (pipe2(err, O_CLOEXEC) < 0) {
			close(out[0]);
			close(out[1]);
			return start_failed(f, R_INTERNAL, 125, "pipe: %s", strerror(errno));
		}
		p->out_fd = out[0];
		p->err_fd = err[0];
		set_nonblock(out[0]);
		set_nonblock(err[0]);
		child_fds[1] = close_after[1] = out[1];
		child_fds[2] = close_after[2] = err[1];
		if (spec->stdin_open) {
			if (pipe2(in, O_CLOEXEC) < 0) {
				start_failed(f, R_INTERNAL, 125, "pipe: %s", strerror(errno));
				goto undo;
			}
			p->in_fd = in[1];
			set_nonblock(in[1]);
			child_fds[0] = close_after[0] = in[0];
		} else {
			child_fds[0] = close_after[0] = open(NEWROOT "/dev/null", O_RDONLY | O_CLOEXEC);
			if (child_fds[0] < 0) {
				start_failed(f, R_INTERNAL, 125, "open /dev/null: %s", strerror(errno));
				goto undo;
			}
		}
	}
	int errpipe[2];
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		start_failed(f, R_INTERNAL, 125, "pipe: %s", strerror(errno));
		goto undo;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(errpipe[0]);
		close(errpipe[1]);
		start_failed(f, R_INTERNAL, 125, "fork: %s", strerror(errno));
		goto undo;
	}
	if (pid == 0) {
		close(errpipe[0]);
		child_exec(spec, ids, child_fds, errpipe[1]);
	}
	close(errpipe[1]);
	for (int i = 0; i < 3; i++)
		close_fd(&close_after[i]);

	struct start_error e;
	ssize_t n;
	do
		n = read(errpipe[0], &e, sizeof e);
	while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n == (ssize_t)sizeof e) {
		waitpid(pid, NULL, 0);
		proc_release(p);
		switch (e.reason) {
		case R_MOUNT_FAILED:
			return start_failed(f, e.reason, 125, "root \"%s\": %s", spec->exec_root ? spec->exec_root : "/", strerror(e.err));
		case R_CWD_FAILED:
			return start_failed(f, e.reason, 125, "working directory \"%s\": %s", spec->cwd, strerror(e.err));
		case R_NOT_FOUND:
			return start_failed(f, e.reason, 127, "exec \"%s\": %s", spec->argv[0],
					    strchr(spec->argv[0], '/') ? strerror(e.err)
								       : "executable file not found in $PATH");
		case R_NOT_EXECUTABLE:
			return start_failed(f, e.reason, 126, "exec \"%s\": %s", spec->argv[0], strerror(e.err));
		default:
			return start_failed(f, R_INTERNAL, 125, "starting \"%s\": %s", spec->argv[0], strerror(e.err));
		}
	}
	p->pid = pid;
	return 0;
undo:
	for (int i = 0; i < 3; i++)
		close_fd(&close_after[i]);
	proc_release(p);
	return -1;
}

/* Sends EXIT(status) for a process: the main one as a report (both ports), an exec on its session. */
static void send_exit(struct proc *p)
{
	uint32_t signo;
	int status = exit_status(p->wstatus, &signo);
	uint8_t e[8];
	put_u32(e, (uint32_t)status);
	put_u32(e + 4, signo);
	if (p->session == 0)
		report(T_EXIT, e, sizeof e);
	else
		ctl_send(T_EXIT, p->session, e, sizeof e);
}

/* The live exec session with this number, or NULL. */
static struct proc *find_exec(uint16_t session)
{
	for (int i = 0; i < MAX_EXECS; i++)
		if (execs[i].live && execs[i].session == session)
			return &execs[i];
	return NULL;
}

/* Handles an EXEC frame: starts the process (STARTED) or answers ERROR + EXIT on its session. */
static void start_exec(uint16_t session, const uint8_t *payload, uint32_t len)
{
	if (session == 0) {
		log_msg("ignoring an EXEC with session 0");
		return;
	}
	if (finishing) {
		reject_exec(session, "the container's main process has exited");
		return;
	}
	if (find_exec(session)) {
		reject_exec_as(session, R_SESSION_IN_USE, "exec session number already in use");
		return;
	}
	struct proc *p = NULL;
	for (int i = 0; i < MAX_EXECS && !p; i++)
		if (!execs[i].live)
			p = &execs[i];
	if (!p) {
		reject_exec(session, "too many exec sessions");
		return;
	}
	struct spec spec;
	char err[512];
	if (exec_spec_parse(payload, len, &spec, err, sizeof err) < 0) {
		char msg[600];
		snprintf(msg, sizeof msg, "invalid EXEC: %s", err);
		reject_exec(session, msg);
		return;
	}
	memset(p, 0, sizeof *p);
	p->session = session;
	struct start_failure f;
	struct user_ids ids;
	int rc;
	/* A pod container's user is one of its own root's. */
	char root[PATH_MAX], passwd[PATH_MAX], group[PATH_MAX];
	int too_long = path_join(root, NEWROOT, spec.exec_root ? spec.exec_root : "") < 0 ||
		       path_join(passwd, root, "/etc/passwd") < 0 || path_join(group, root, "/etc/group") < 0;
	if (too_long)
		rc = start_failed(&f, R_SPEC_INVALID, 125, "EXEC_ROOT %s: path too long", spec.exec_root);
	else if (user_resolve(spec.user, passwd, group, &ids, err, sizeof err) < 0)
		rc = start_failed(&f, R_USER_UNKNOWN, 125, "%s", err);
	else
		rc = start_process(&spec, &ids, p, &f);
	spec_free(&spec);
	if (rc < 0) {
		uint8_t buf[1 + sizeof f.msg];
		buf[0] = (uint8_t)f.reason;
		size_t n = strlen(f.msg);
		memcpy(buf + 1, f.msg, n);
		ctl_send(T_ERROR, session, buf, n + 1);
		uint8_t e[8];
		put_u32(e, (uint32_t)f.status);
		put_u32(e + 4, 0);
		ctl_send(T_EXIT, session, e, sizeof e);
		return;
	}
	p->live = 1;
	uint8_t started[4];
	put_u32(started, (uint32_t)p->pid);
	ctl_send(T_STARTED, session, started, sizeof started);
}

/* ---------------------------------------------------------------- I/O */

/* Iterates p over the main process and every live exec session. */
#define FOR_EACH_PROC(p)                                                                                      \
	for (struct proc *p = &main_proc; p; p = p == &main_proc ? execs : p + 1 < execs + MAX_EXECS ? p + 1 : NULL) \
		if (p == &main_proc || p->live)

/* Reaps every exited child; records the status of the container's processes. */
static void reap(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		FOR_EACH_PROC(p)
		{
			if (p->pid == pid && !p->exited) {
				p->exited = 1;
				p->wstatus = st;
				p->drain_deadline = now_ms() + EXEC_DRAIN_MS;
			}
		}
	}
}

/* Drains the signalfd and reaps. */
static void on_sigchld(int sfd)
{
	struct signalfd_siginfo si[8];
	while (read(sfd, si, sizeof si) > 0)
		;
	reap();
}

/* True when output of p may be read now (the log port always takes it; boson.ctl applies back-pressure). */
static int may_read_output(const struct proc *p)
{
	return p->to_log || ctl_accepts_output();
}

/* Reads once from an output fd of p and forwards it as a frame of the given type. Returns 1 if data moved, 0 if
 * nothing was ready, -1 at EOF (or EIO from a pty master whose slave is closed). */
static int pump_output(struct proc *p, int fd, uint8_t type)
{
	ssize_t n = read(fd, iobuf, sizeof iobuf);
	if (n > 0) {
		if (p->to_log)
			log_record(type, iobuf, (size_t)n);
		else
			ctl_send(type, p->session, iobuf, (size_t)n);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

/* Services an output fd: forwards what is ready and closes it at EOF. */
static void service_output(struct proc *p, int *fd, uint8_t type)
{
	if (pump_output(p, *fd, type) < 0) {
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
		if (p->in_len)
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

/* Sets CLOCK_REALTIME to `ns` since the epoch (the host's clock: SPEC's CLOCK, or a CLOCK frame after a resume). */
static void set_clock(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		log_msg("clock_settime: %s", strerror(errno));
}

/* Handles one frame from the host. */
static void handle_frame(const struct frame_hdr *h, const uint8_t *payload)
{
	if (h->type == T_EXEC) {
		start_exec(h->session, payload, h->len);
		return;
	}
	if (h->type == T_CLOCK) { /* the host resumed a suspended VM: its clock stood still meanwhile */
		if (h->len == 8)
			set_clock(get_u64(payload));
		return;
	}
	if (h->type == T_SYNC) { /* before the host saves the VM: the disks hold what the container wrote */
		sync();
		ctl_send(T_SYNCED, h->session, NULL, 0);
		return;
	}
	struct proc *p = h->session == 0 ? &main_proc : find_exec(h->session);
	if (!p || p->exited)
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
static void handle_frames(void)
{
	struct frame_hdr h;
	const uint8_t *payload;
	while ((payload = next_frame(&h))) {
		handle_frame(&h, payload);
		consume_frame(&h);
	}
	FOR_EACH_PROC(p)
	flush_stdin(p);
}

/* Pending stdin bytes of every process. */
static size_t stdin_pending(void)
{
	size_t n = 0;
	FOR_EACH_PROC(p)
	n += p->in_len;
	return n;
}

/* Ends an exec session whose process has exited: forwards what output is ready, closes its fds, sends EXIT. */
static void end_exec(struct proc *p)
{
	while (p->out_fd >= 0 && pump_output(p, p->out_fd, T_STDOUT) > 0)
		;
	while (p->err_fd >= 0 && pump_output(p, p->err_fd, T_STDERR) > 0)
		;
	proc_release(p);
	send_exit(p);
	p->live = 0;
}

/* Ends the exec sessions that are done: exited, and output at EOF (or waited for long enough). */
static void end_finished_execs(long long now)
{
	for (int i = 0; i < MAX_EXECS; i++) {
		struct proc *p = &execs[i];
		if (p->live && p->exited && ((p->out_fd < 0 && p->err_fd < 0) || now >= p->drain_deadline))
			end_exec(p);
	}
}

/* What a pollfd entry stands for. */
enum slot_kind { SLOT_PORT, SLOT_SIGNAL, SLOT_OUT, SLOT_ERR, SLOT_IN };

/* Polls the port, the signalfd and every process's fds once (at most timeout ms, -1 = no limit; shortened to
 * look for a reconnecting host and for exec deadlines) and services what is ready. With finishing_now, reads
 * output regardless of back-pressure, skips stdin and refuses EXECs. */
static void poll_once(int sfd, int timeout, int finishing_now)
{
	struct pollfd fds[2 + 3 * (1 + MAX_EXECS)];
	struct slot {
		enum slot_kind kind;
		struct proc *p;
	} slot[2 + 3 * (1 + MAX_EXECS)];
	nfds_t n = 0;
	short pev = port_events(!finishing_now && stdin_pending() < STDIN_HIGH);
	if (ctl_connected()) {
		slot[n].kind = SLOT_PORT;
		fds[n++] = (struct pollfd){.fd = port_fd(), .events = pev};
	} else if (timeout < 0 || timeout > RECONNECT_POLL_MS) {
		timeout = RECONNECT_POLL_MS;
	}
	slot[n].kind = SLOT_SIGNAL;
	fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
	FOR_EACH_PROC(p)
	{
		int readable = finishing_now || may_read_output(p);
		if (p->out_fd >= 0 && readable) {
			slot[n] = (struct slot){SLOT_OUT, p};
			fds[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
		}
		if (p->err_fd >= 0 && readable) {
			slot[n] = (struct slot){SLOT_ERR, p};
			fds[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
		}
		if (!finishing_now && p->in_fd >= 0 && p->in_len > 0) {
			slot[n] = (struct slot){SLOT_IN, p};
			fds[n++] = (struct pollfd){.fd = p->in_fd, .events = POLLOUT};
		}
		if (p != &main_proc && p->exited) {
			long long left = p->drain_deadline - now_ms();
			if (left < 0)
				left = 0;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
	}
	if (poll(fds, n, timeout) < 0) {
		if (errno == EINTR)
			return;
		fail(R_INTERNAL, 125, "poll: %s", strerror(errno));
	}
	short port_revents = 0;
	for (nfds_t i = 0; i < n; i++) {
		if (!fds[i].revents)
			continue;
		struct proc *p = slot[i].p;
		switch (slot[i].kind) {
		case SLOT_PORT:
			port_revents = fds[i].revents;
			break;
		case SLOT_SIGNAL:
			on_sigchld(sfd);
			break;
		case SLOT_OUT:
			if (p->out_fd >= 0)
				service_output(p, &p->out_fd, T_STDOUT);
			break;
		case SLOT_ERR:
			if (p->err_fd >= 0)
				service_output(p, &p->err_fd, T_STDERR);
			break;
		case SLOT_IN:
			flush_stdin(p);
			break;
		}
	}
	if (port_revents)
		port_service(port_revents);
	port_check_reconnect();
	if (finishing_now) { /* frames while finishing: EXECs are refused, the rest is moot */
		struct frame_hdr h;
		const uint8_t *payload;
		while ((payload = next_frame(&h))) {
			if (h.type == T_EXEC && h.session != 0)
				reject_exec(h.session, "the container's main process has exited");
			consume_frame(&h);
		}
	} else {
		handle_frames();
		end_finished_execs(now_ms());
	}
}

/* Runs until the main process has exited: forwards I/O, frames and signals, runs exec sessions. */
static void event_loop(int sfd)
{
	handle_frames(); /* frames that arrived together with SPEC */
	while (!main_proc.exited)
		poll_once(sfd, -1, 0);
}

/* True while some process still has output open. */
static int outputs_open(void)
{
	FOR_EACH_PROC(p)
	{
		if (p->out_fd >= 0 || p->err_fd >= 0)
			return 1;
	}
	return 0;
}

/* After the main process exited: forwards the rest of its output, kills every other process (exec sessions
 * included), drains all output to EOF, reaps, sends the exec sessions' EXITs, unmounts the volumes, syncs, sends
 * the main EXIT, and powers off once the host has it. */
static _Noreturn void finish(int sfd, const struct spec *spec)
{
	struct proc *m = &main_proc;
	finishing = 1;
	while (m->out_fd >= 0 && pump_output(m, m->out_fd, T_STDOUT) > 0)
		;
	while (m->err_fd >= 0 && pump_output(m, m->err_fd, T_STDERR) > 0)
		;
	kill(-1, SIGKILL);
	FOR_EACH_PROC(p)
	{
		if (!p->tty)
			close_stdin(p);
	}
	long long deadline = now_ms() + DRAIN_WAIT_MS;
	while (outputs_open()) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			log_msg("output still open %d ms after the process exited; giving up on it", DRAIN_WAIT_MS);
			break;
		}
		poll_once(sfd, (int)left, 1);
	}
	reap();
	for (int i = 0; i < MAX_EXECS; i++) {
		struct proc *p = &execs[i];
		if (!p->live)
			continue;
		if (!p->exited) { /* killed above; wait a little for the kernel to finish it */
			long long until = now_ms() + 1000;
			while (!p->exited && now_ms() < until) {
				usleep(1000);
				reap();
			}
			if (!p->exited)
				p->wstatus = SIGKILL; /* reported as killed */
		}
		end_exec(p);
	}
	unmount_volumes(spec);
	/* What the container wrote must be on its disks before the host hears of the end (and may stop the VM at once).
	 * A --rm container's writable layer goes with it: without volumes (one still busy above is only detached, and
	 * flushed by this sync) there is nothing to keep. */
	if (!spec->ephemeral || spec->nmounts > 0)
		sync();
	send_exit(m);
	ctl_drain();
	proc_release(m);
	unmount_all();
	linger();
	power_off();
}

/* Mixes the host's ENTROPY record into the guest's pool, credited, and reseeds the kernel's generator now: a VM
 * that was booted ahead of its container (a warm pool) or cloned from a snapshot must not share its random state. */
#define BOSON_RNDADDENTROPY _IOW('R', 0x03, int[2]) /* <linux/random.h>, which musl's headers lack */
#define BOSON_RNDRESEEDCRNG _IO('R', 0x07)
static void reseed(const struct spec *spec)
{
	if (spec->entropy_len == 0)
		return;
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		log_msg("entropy: open /dev/urandom: %s", strerror(errno));
		return;
	}
	struct {
		int entropy_count; /* struct rand_pool_info */
		int buf_size;
		uint8_t buf[sizeof spec->entropy];
	} seed;
	seed.entropy_count = (int)(spec->entropy_len * 8);
	seed.buf_size = (int)spec->entropy_len;
	memcpy(seed.buf, spec->entropy, spec->entropy_len);
	if (ioctl(fd, BOSON_RNDADDENTROPY, &seed) < 0)
		log_msg("entropy: RNDADDENTROPY: %s", strerror(errno));
	if (ioctl(fd, BOSON_RNDRESEEDCRNG) < 0)
		log_msg("entropy: RNDRESEEDCRNG: %s", strerror(errno));
	close(fd);
}

int main(void)
{
	umask(0);
	mount_early();
	ensure_stdio(); /* first, so that no fd of init's lands on 0, 1 or 2 */
	int sfd = setup_signals();
	load_modules();
	apply_settings(SETTINGS_FILE, "");
	if (warm_up())
		warm_network();
	open_port();

	struct spec spec;
	read_spec(&spec);
	if (spec.has_clock)
		set_clock(spec.clock_ns);
	reseed(&spec);
	if (spec.log_port) {
		set_reconnectable();
		if (open_log_port() < 0)
			fail(R_INTERNAL, 125, "no virtio-serial port named boson.log");
	}
	setup_network(&spec);
	prepare_root(&spec);
	if (sethostname(spec.hostname, strlen(spec.hostname)) < 0)
		log_msg("sethostname %s: %s", spec.hostname, strerror(errno));
	struct user_ids ids;
	char err[512];
	if (user_resolve(spec.user, NEWROOT "/etc/passwd", NEWROOT "/etc/group", &ids, err, sizeof err) < 0)
		fail(R_USER_UNKNOWN, 125, "%s", err);
	if (sfd < 0)
		fail(R_INTERNAL, 125, "signalfd: %s", strerror(errno));

	struct start_failure f;
	main_proc.to_log = spec.log_port;
	if (start_process(&spec, &ids, &main_proc, &f) < 0)
		fail(f.reason, f.status, "%s", f.msg);
	uint8_t started[4];
	put_u32(started, (uint32_t)main_proc.pid);
	report(T_STARTED, started, sizeof started);
	event_loop(sfd);
	finish(sfd, &spec);
}
